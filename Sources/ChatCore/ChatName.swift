/// A username or chat id: `A-Z a-z 0-9 /`, compared without case, shown as given (docs/protocol.md §1).
public struct ChatName: Hashable, Sendable, CustomStringConvertible {
    /// As the user typed it.
    public let display: String
    /// Lowercased: the identity used for rooms and the name registry.
    public let key: String

    /// Returns nil unless `bytes` is 1…`maxLength` characters of `A-Z a-z 0-9 /`.
    public init?<C: Collection>(bytes: C, maxLength: Int) where C.Element == UInt8 {
        guard !bytes.isEmpty, bytes.count <= maxLength, bytes.allSatisfy(ChatName.isNameByte) else { return nil }
        display = String(decoding: bytes, as: UTF8.self)
        key = String(decoding: bytes.map(ChatName.lowercased), as: UTF8.self)
    }

    public init?(_ text: String, maxLength: Int) {
        self.init(bytes: Array(text.utf8), maxLength: maxLength)
    }

    public static func == (a: ChatName, b: ChatName) -> Bool { a.key == b.key }
    public func hash(into h: inout Hasher) { h.combine(key) }
    public var description: String { display }

    @inline(__always)
    public static func isNameByte(_ b: UInt8) -> Bool {
        (b >= 0x61 && b <= 0x7A) || (b >= 0x41 && b <= 0x5A) || (b >= 0x30 && b <= 0x39) || b == 0x2F
    }

    @inline(__always)
    static func lowercased(_ b: UInt8) -> UInt8 { (b >= 0x41 && b <= 0x5A) ? b | 0x20 : b }
}

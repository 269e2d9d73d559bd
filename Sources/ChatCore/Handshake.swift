/// The first message of a connection (SPEC.md §3.1): `<USERNAME>_<CHAT_ID>`.
public enum Handshake: Equatable, Sendable {
    case client(username: ChatName, chatID: ChatName)
    /// A peer link's opening line (docs/protocol.md, "Peer links"). It contains a space,
    /// which no client handshake can, so the two never collide.
    case peer(line: String)
    /// `TCPCHAT-STATUS/1`: a `tcp_chat status` request (docs/operations.md).
    case status
    /// An HTTP request line (`GET /ws HTTP/1.1`): a browser (docs/protocol.md, "Web
    /// clients"). It contains spaces, which no client handshake can.
    case http(requestLine: String)
    case malformed

    /// The prefix every peer handshake starts with.
    public static let peerPrefix: [UInt8] = Array("TCPCHAT-PEER/".utf8)

    /// Parses one complete handshake message (its `\n` / `\r\n` already removed).
    public static func parse<C: Collection>(_ bytes: C) -> Handshake where C.Element == UInt8, C.Index == Int {
        if bytes.starts(with: peerPrefix) {
            return .peer(line: String(decoding: bytes, as: UTF8.self))
        }
        if bytes.elementsEqual(StatusAccess.requestLine.utf8) { return .status }
        if HTTPRequestParser.parseRequestLine(bytes) != nil {
            return .http(requestLine: String(decoding: bytes, as: UTF8.self))
        }
        guard let sep = bytes.firstIndex(of: UInt8(ascii: "_")) else { return .malformed }
        let user = bytes[bytes.startIndex..<sep]
        let chat = bytes[(sep + 1)..<bytes.endIndex]
        guard let u = ChatName(bytes: user, maxLength: Limits.maxUsernameLength),
              let c = ChatName(bytes: chat, maxLength: Limits.maxChatIDLength)
        else { return .malformed }
        return .client(username: u, chatID: c)
    }
}

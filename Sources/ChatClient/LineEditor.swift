/// The interactive prompt: keyboard bytes in, screen bytes and events out. Pure (no I/O),
/// so it is unit-tested byte for byte; `ChatSession` does the reading and writing.
///
/// The line never wraps: when the input is wider than the terminal only its tail is shown,
/// so `\r` + erase-line always clears the whole prompt and an incoming message can be
/// printed above it without garbling what is being typed.
public struct LineEditor: Sendable {
    public enum Event: Equatable, Sendable {
        /// Enter on a non-empty line.
        case submit(String)
        /// Ctrl+C, or Ctrl+D on an empty line.
        case quit
    }

    public let prompt: String
    /// Terminal width; the caller updates it on SIGWINCH.
    public var columns: Int
    /// Longest input in UTF-8 bytes (the node's message limit); past it keys ring the bell.
    public let maxBytes: Int
    public private(set) var text = ""

    private var utf8: [UInt8] = []        // a multi-byte character still arriving
    private var utf8Needed = 0
    private var escape = EscapeState.none

    /// Terminal control sequences the editor writes.
    static let eraseLine = "\r\u{1B}[K"
    static let bell = "\u{07}"

    private enum EscapeState: Sendable { case none, escape, csi, ss3 }

    public init(prompt: String = "> ", columns: Int = 80, maxBytes: Int = 4096) {
        self.prompt = prompt
        self.columns = columns
        self.maxBytes = maxBytes
    }

    /// Handles keyboard bytes. Returns what to write to the terminal and the events, in order.
    /// Bytes after a `.quit` are ignored.
    public mutating func feed<S: Sequence>(_ bytes: S) -> (output: String, events: [Event]) where S.Element == UInt8 {
        var events: [Event] = []
        var changed = false
        var ring = false
        for b in bytes {
            if handleEscape(b) { continue }
            if b >= 0x80 {
                if let c = assembleUTF8(b) {
                    if insert(c) { changed = true } else { ring = true }
                }
                continue
            }
            utf8.removeAll(); utf8Needed = 0   // a truncated character is dropped
            switch b {
            case 0x20..<0x7F:
                if insert(Character(Unicode.Scalar(b))) { changed = true } else { ring = true }
            case 0x0D, 0x0A:                    // Enter (CR in raw mode; LF from a paste)
                if !text.isEmpty {
                    events.append(.submit(text))
                    text = ""                   // the node echoes it back as "<me> - <text>"
                    changed = true
                }
            case 0x7F, 0x08:                    // Backspace / Ctrl+H: one whole character
                if !text.isEmpty { text.removeLast(); changed = true }
            case 0x15:                          // Ctrl+U: kill the line
                if !text.isEmpty { text = ""; changed = true }
            case 0x17:                          // Ctrl+W: delete the last word
                if !text.isEmpty { deleteWord(); changed = true }
            case 0x03:                          // Ctrl+C
                events.append(.quit)
                return (changed ? render() : "", events)
            case 0x04:                          // Ctrl+D on an empty line
                if text.isEmpty {
                    events.append(.quit)
                    return (changed ? render() : "", events)
                }
            case 0x0C:                          // Ctrl+L: redraw
                changed = true
            case 0x1B:
                escape = .escape
            default:
                break                           // other control keys (TAB included) do nothing
            }
        }
        return ((changed ? render() : "") + (ring ? Self.bell : ""), events)
    }

    /// The prompt line as it should look now, drawn from the start of the row.
    public func render() -> String {
        let room = max(columns - DisplayWidth.columns(of: prompt[...]) - 1, 1)
        var shown = text[...]
        if DisplayWidth.columns(of: shown) > room {
            // Keep the tail that fits after a "…" marker.
            var width = 1
            var start = text.endIndex
            while start > text.startIndex {
                let prev = text.index(before: start)
                let w = DisplayWidth.columns(of: text[prev])
                if width + w > room { break }
                width += w
                start = prev
            }
            shown = "…" + text[start...]
        }
        return Self.eraseLine + prompt + shown
    }

    /// Prints `message` on its own line above the prompt, then redraws the prompt and input.
    public func show(_ message: String) -> String {
        Self.eraseLine + message + "\r\n" + render()
    }

    /// Clears the prompt line (before printing a last status line and leaving).
    public func clear() -> String { Self.eraseLine }

    // MARK: - Input decoding

    /// Swallows escape sequences (arrow keys, function keys, Alt+key): this editor has no
    /// cursor movement, and their bytes must not land in the message.
    private mutating func handleEscape(_ b: UInt8) -> Bool {
        switch escape {
        case .none:
            return false
        case .escape:
            escape = b == UInt8(ascii: "[") ? .csi : b == UInt8(ascii: "O") ? .ss3 : .none
        case .csi:
            if !(0x20...0x3F).contains(b) { escape = .none }   // a final byte (or junk) ends it
        case .ss3:
            escape = .none
        }
        return true
    }

    /// Collects a multi-byte UTF-8 character; returns it when complete and valid.
    private mutating func assembleUTF8(_ b: UInt8) -> Character? {
        if b & 0xC0 == 0x80 {                    // continuation byte
            guard utf8Needed > 0 else { return nil }
            utf8.append(b)
            utf8Needed -= 1
            guard utf8Needed == 0 else { return nil }
            defer { utf8.removeAll() }
            guard let s = String(validating: utf8, as: UTF8.self), let scalar = s.unicodeScalars.first,
                  !(0x80...0x9F).contains(scalar.value)   // C1 controls are not text
            else { return nil }
            return Character(scalar)
        }
        utf8 = [b]
        switch b {
        case 0xC2...0xDF: utf8Needed = 1
        case 0xE0...0xEF: utf8Needed = 2
        case 0xF0...0xF4: utf8Needed = 3
        default: utf8.removeAll(); utf8Needed = 0
        }
        return nil
    }

    private mutating func insert(_ c: Character) -> Bool {
        guard text.utf8.count + c.utf8.count <= maxBytes else { return false }
        text.append(c)                           // a combining mark joins the previous character
        return true
    }

    private mutating func deleteWord() {
        while let last = text.last, last == " " { text.removeLast() }
        while let last = text.last, last != " " { text.removeLast() }
    }
}

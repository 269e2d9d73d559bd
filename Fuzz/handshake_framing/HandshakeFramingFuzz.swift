// Fuzz target `handshake_framing`: the first bytes of a client connection, cut into
// reads at fuzzer-chosen points, go through what ClientHandler does with them:
// a MessageFramer with the handshake limit, Handshake.parse on the first message, then
// the same framer with `maxMessageBytes` for the session's messages, into a Hub.
//
// Input layout (every field optional: missing bytes read as zero):
//   byte 0   config: bits 0-2 message limit (see `messageLimits`), bits 3-5 the payload
//            is repeated 1...8 times (long streams from short inputs: buffer compaction),
//            bit 6 a silence ends the stream, bit 7 small handshake limit (16 instead of 256)
//   byte 1   n = number of read specs (low 4 bits)
//   2n bytes read specs, used in a cycle: [length low byte, flags]; the read is
//            1 + low + 256 * ((flags >> 2) & 3) bytes; flags bit 0: a silence follows the
//            read (ClientHandler's silence timer fires), bit 1: the node does not read
//            messages out after it (rate-limit pause / pending login); no specs: one read
//   rest     the payload
//
// Invariants:
//   - the framer agrees with a whole-buffer reference model of docs/protocol.md §2 on every
//     frame (same messages, same tooLong, same nil);
//   - no message is longer than the limit in force, none contains `\n`;
//   - while no tooLong happened, the frames plus their separators (`\n`, `\r\n`; for a frame
//     cut by silence nothing or a final `\r`) reproduce the input exactly, bufferedBytes is
//     what is left, and a silence only ever completes bytes that hold no `\n`;
//   - Handshake.parse agrees with a reference parser written from SPEC.md §3.1;
//   - `takeBuffered` after a peer/status first line returns exactly the unread input;
//   - each session message gets exactly one reply of the right framing from the Hub.

#if canImport(Glibc)
import Glibc
#endif

let messageLimits = [4096, 1, 2, 3, 8, 16, 64, 300]

@_cdecl("LLVMFuzzerTestOneInput")
public func handshakeFramingFuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = size > 0 && data != nil ? Array(UnsafeBufferPointer(start: data, count: size)) : []
    var run = HandshakeFramingRun(input)
    run.run()
    return 0
}

/// The reference: the framing rules applied to the pending bytes `bytes[head...]`. Consumed
/// or dropped bytes are skipped by moving `head`, never removed: a long stream costs linear
/// time, and no `removeAll` (a generic `replaceSubrange`, traced compare by compare) runs
/// per read. `bytes` holds at most the input's stream (a few KiB).
struct ModelFramer {
    var limit: Int
    var bytes: [UInt8] = []
    var head = 0
    var discarding = false

    var pendingCount: Int { bytes.count - head }

    mutating func append(_ b: ArraySlice<UInt8>) {
        bytes.append(contentsOf: b)
    }

    /// Where the next `\n` is, by memchr (not traced: the harness is not what is fuzzed).
    func newline() -> Int? {
        bytes.withUnsafeBufferPointer { all -> Int? in
            guard head < all.count, let p = memchr(all.baseAddress! + head, 0x0A, all.count - head) else { return nil }
            return UnsafeRawPointer(p) - UnsafeRawPointer(all.baseAddress!)
        }
    }

    mutating func dropPending() { head = bytes.count }

    mutating func next() -> Frame? {
        while let nl = newline() {
            let lineStart = head
            var lineEnd = nl
            head = nl + 1
            if lineEnd > lineStart && bytes[lineEnd - 1] == 0x0D { lineEnd -= 1 }
            if discarding { discarding = false; continue }
            return lineEnd - lineStart > limit ? .tooLong : .message(bytes[lineStart..<lineEnd])
        }
        if discarding { dropPending(); return nil }
        // A partial longer than any message can become (limit bytes plus a final `\r`).
        if pendingCount > limit + 1 { discarding = true; dropPending(); return .tooLong }
        return nil
    }

    mutating func flushPartial() -> Frame? {
        if pendingCount == 0 { return nil }
        if discarding { discarding = false; dropPending(); return nil }
        var end = bytes.count
        let start = head
        dropPending()
        if bytes[end - 1] == 0x0D { end -= 1 }
        return end - start > limit ? .tooLong : .message(bytes[start..<end])
    }
}

/// SPEC.md §3.1 read literally, independently of Handshake.swift / ChatName.swift.
enum ReferenceHandshake: Equatable {
    case client(user: [UInt8], chat: [UInt8])
    case peer
    case status
    /// `METHOD SP /target SP HTTP/1.0|1.1` (docs/protocol.md, "Web clients").
    case http
    case malformed

    /// The spec's name alphabet as a table (a Set hashed every byte with SipHash).
    static let isNameByte: [Bool] = {
        var t = [Bool](repeating: false, count: 256)
        for b in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/".utf8 { t[Int(b)] = true }
        return t
    }()
    static let peerPrefix = Array("TCPCHAT-PEER/".utf8)
    static let statusLine = Array("TCPCHAT-STATUS/1".utf8)
    static let tchar = Set(Array("!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz".utf8))

    static func parse(_ b: [UInt8]) -> ReferenceHandshake {
        if b.count >= peerPrefix.count && same(b[0..<peerPrefix.count], peerPrefix) { return .peer }
        if same(b, statusLine) { return .status }
        let words = b.split(separator: 0x20, omittingEmptySubsequences: false)
        if words.count == 3, (1...16).contains(words[0].count), words[0].allSatisfy(tchar.contains),
           words[1].first == UInt8(ascii: "/"), words[1].allSatisfy({ $0 > 0x20 && $0 < 0x7F }),
           [Array("HTTP/1.1".utf8), Array("HTTP/1.0".utf8)].contains(Array(words[2])) {
            return .http
        }
        let parts = b.split(separator: UInt8(ascii: "_"), omittingEmptySubsequences: false)
        guard parts.count == 2 else { return .malformed }
        let user = Array(parts[0]), chat = Array(parts[1])
        guard (1...32).contains(user.count), (1...64).contains(chat.count),
              user.allSatisfy({ isNameByte[Int($0)] }), chat.allSatisfy({ isNameByte[Int($0)] }) else { return .malformed }
        return .client(user: user, chat: chat)
    }
}

struct HandshakeFramingRun {
    enum Phase { case handshake, session, closed }

    var reader: FuzzReader
    var framer: MessageFramer
    var model: ModelFramer
    let messageLimit: Int
    let handshakeLimit: Int
    var phase = Phase.handshake
    /// Every byte handed to the framer, in order.
    var stream: [UInt8] = []
    /// Where the last `\n` of `stream` is (-1: none yet): "no `\n` unread" is `lastNewline < cursor`.
    var lastNewline = -1
    /// Where the next frame must start in `stream` (valid while `inSync`).
    var cursor = 0
    /// False once a tooLong made the framer skip bytes.
    var inSync = true
    var limit: Int
    // The session, once the handshake is accepted.
    let hub: Hub
    let sink: RecordingSink
    var framing = Framing.line
    /// `<username> - `, what an echo starts with.
    var echoPrefix: [UInt8] = []

    init(_ input: [UInt8]) {
        reader = FuzzReader(input)
        let cfg = input.first ?? 0
        messageLimit = messageLimits[Int(cfg & 7)]
        handshakeLimit = cfg & 0x80 != 0 ? 16 : Limits().maxHandshakeBytes
        framer = MessageFramer(maxBytes: handshakeLimit)
        model = ModelFramer(limit: handshakeLimit)
        limit = handshakeLimit
        (hub, sink) = HandshakeFramingRun.hub(Int(cfg & 7))
        sink.clear()
        sink.session = nil
    }

    /// One lone hub per message limit, made on first use and kept for the run (making a Hub
    /// costs more than most inputs): every input logs its session out at the end and
    /// checks that the hub is empty again, so no input sees another's state.
    nonisolated(unsafe) static var hubs = [(Hub, RecordingSink)?](repeating: nil, count: messageLimits.count)

    static func hub(_ i: Int) -> (Hub, RecordingSink) {
        if let h = hubs[i] { return h }
        var limits = Limits()
        limits.maxMessageBytes = messageLimits[i]
        limits.rateLimit = 0
        let h = (Hub(limits: limits), RecordingSink())
        hubs[i] = h
        return h
    }

    /// The connection closes: the session (if any) logs out, which must leave nothing behind.
    mutating func finish() {
        if let s = sink.session { hub.logout(s) }
        sink.session = nil
        require(hub.sessions.isEmpty && hub.rooms.isEmpty && hub.announced.isEmpty,
                "after logout the hub still holds \(hub.sessions.count) sessions, \(hub.rooms.count) rooms, \(hub.announced.count) announced rooms")
    }

    mutating func run() {
        let cfg = reader.byte()
        let repeats = 1 + Int((cfg >> 3) & 7)
        let finalSilence = cfg & 0x40 != 0
        let nSpecs = Int(reader.byte() & 15)
        var specs: [(len: Int, silence: Bool, pause: Bool)] = []
        for _ in 0..<nSpecs {
            let low = Int(reader.byte()), flags = reader.byte()
            specs.append((1 + low + 256 * Int((flags >> 2) & 3), flags & 1 != 0, flags & 2 != 0))
        }
        let payload = Array(reader.rest())
        var whole: [UInt8] = []
        for _ in 0..<repeats { whole += payload }

        var at = 0, k = 0
        while at < whole.count && phase != .closed {
            let spec = specs.isEmpty ? (len: whole.count, silence: false, pause: false) : specs[k % specs.count]
            k += 1
            let end = min(whole.count, at + spec.len)
            read(whole[at..<end])
            at = end
            if !spec.pause { drain() }
            if spec.silence { silence() }
        }
        if phase != .closed {
            drain()
            if finalSilence { silence() }
        }
        finish()
    }

    /// One read from the socket.
    mutating func read(_ bytes: ArraySlice<UInt8>) {
        let base = stream.count
        stream.append(contentsOf: bytes)
        bytes.withUnsafeBufferPointer { b in
            var at = 0
            while at < b.count, let p = memchr(b.baseAddress! + at, 0x0A, b.count - at) {
                let i = UnsafeRawPointer(p) - UnsafeRawPointer(b.baseAddress!)
                lastNewline = base + i
                at = i + 1
            }
        }
        // Half the reads through the raw-buffer entry point the runtime uses.
        if bytes.count % 2 == 0 {
            bytes.withUnsafeBytes { framer.append($0) }
        } else {
            framer.append(contentsOf: bytes)
        }
        model.append(bytes)
        require(framer.bufferedBytes == model.pendingCount, "bufferedBytes \(framer.bufferedBytes) != model \(model.pendingCount)")
    }

    /// ClientHandler.process(): take out every complete message.
    mutating func drain() {
        while phase != .closed {
            let f = framer.next()
            let m = model.next()
            require(sameFrame(f, m), "next(): framer \(describe(f)) != model \(describe(m)) (limit \(limit))")
            guard let frame = f else { break }
            handle(frame, byNewline: true)
        }
        guard phase != .closed else { return }
        require(framer.hasPartial == (framer.bufferedBytes > 0), "hasPartial disagrees with bufferedBytes")
        if inSync {
            require(framer.bufferedBytes == stream.count - cursor,
                    "after next() == nil: \(framer.bufferedBytes) bytes buffered, \(stream.count - cursor) unread")
            require(lastNewline < cursor, "next() returned nil with a newline unread")
        }
    }

    /// The silence timer fired: the pending bytes are one message.
    mutating func silence() {
        drain()   // a paused node resumes reading before a silence can count
        guard phase != .closed, framer.hasPartial else { return }
        if inSync { require(lastNewline < cursor, "silence with a newline pending") }
        let f = framer.flushPartial()
        let m = model.flushPartial()
        require(sameFrame(f, m), "flushPartial(): framer \(describe(f)) != model \(describe(m))")
        require(!framer.hasPartial && framer.bufferedBytes == 0, "flushPartial left \(framer.bufferedBytes) bytes")
        if let f { handle(f, byNewline: false) } else { require(!inSync, "flushPartial returned nil with bytes pending") }
    }

    mutating func handle(_ frame: Frame, byNewline: Bool) {
        switch frame {
        case .tooLong:
            inSync = false
            if phase == .handshake { phase = .closed; return }   // 400 and close
            deliver(frame)
        case .message(let bytes):
            require(bytes.count <= limit, "a \(bytes.count)-byte message over the \(limit)-byte limit")
            require(!bytes.contains(0x0A), "a message holds a newline")
            if inSync { checkReconstruction(bytes, byNewline: byNewline) }
            if phase == .handshake { handshake(Array(bytes), byNewline: byNewline) } else { deliver(frame) }
        }
    }

    /// The frame is exactly the next bytes of the stream, followed by its separator.
    mutating func checkReconstruction(_ bytes: ArraySlice<UInt8>, byNewline: Bool) {
        let n = bytes.count
        require(cursor + n <= stream.count && same(stream[cursor..<(cursor + n)], bytes),
                "frame \(hex(bytes)) is not the next \(n) bytes of the stream at \(cursor)")
        var next = cursor + n
        if byNewline {
            if next < stream.count && stream[next] == 0x0A {
                require(bytes.last != 0x0D, "a frame ended by `\\n` kept its `\\r`")
                next += 1
            } else {
                require(next + 1 < stream.count && stream[next] == 0x0D && stream[next + 1] == 0x0A,
                        "a line frame is not followed by `\\n` or `\\r\\n`")
                next += 2
            }
        } else {
            if next < stream.count {
                require(next + 1 == stream.count && stream[next] == 0x0D, "a silence frame does not end the stream read so far")
                next += 1
            }
        }
        cursor = next
    }

    mutating func handshake(_ bytes: [UInt8], byNewline: Bool) {
        let parsed = Handshake.parse(bytes)
        let reference = ReferenceHandshake.parse(bytes)
        switch (parsed, reference) {
        case (.client(let u, let c), .client(let ru, let rc)):
            require(same(u.display.utf8, ru) && same(c.display.utf8, rc), "client names differ from the bytes")
            require(u.key == String(decoding: ru, as: UTF8.self).lowercased() && c.key == String(decoding: rc, as: UTF8.self).lowercased(),
                    "name keys are not the lowercased names")
            framing = byNewline ? .line : .raw
            switch hub.login(username: u, chatID: c, framing: framing, sink: sink) {
            case .accepted(let s): sink.session = s
            case .nameTaken, .pending: fuzzFail("a lone hub did not accept the first login")
            }
            require(sink.count == 1 && same(sink.reply(0), Notice.accepted.utf8 + (framing == .line ? [0x0A] : [])), "login reply \(sink.sent)")
            sink.clear()
            echoPrefix = Array(u.display.utf8) + Array(" - ".utf8)
            phase = .session
            limit = messageLimit
            framer.maxBytes = messageLimit
            model.limit = messageLimit
        case (.peer(let line), .peer):
            require(same(line.utf8, bytes) || String(validating: bytes, as: UTF8.self) == nil, "peer line differs from the bytes")
            handOver()
        case (.status, .status):
            handOver()
        case (.http(let line), .http):
            require(Array(line.utf8) == bytes, "request line differs from the bytes")
            handOver()
        case (.malformed, .malformed):
            phase = .closed
        default:
            fuzzFail("Handshake.parse(\(hex(bytes))) = \(parsed), reference says \(reference)")
        }
    }

    /// The connection changes protocol: what is buffered goes to the new handler unchanged.
    mutating func handOver() {
        let rest = framer.takeBuffered()
        require(framer.bufferedBytes == 0 && !framer.hasPartial, "takeBuffered left bytes behind")
        if inSync { require(same(rest, stream[cursor...]), "takeBuffered \(hex(rest)) != unread \(hex(stream[cursor...]))") }
        phase = .closed
    }

    /// One session message into the Hub: exactly one reply, or none for an empty message.
    mutating func deliver(_ frame: Frame) {
        guard let session = sink.session else { fuzzFail("no session") }
        sink.clear()
        let result = hub.receive(frame, from: session)
        if case .message(let b) = frame, same(b, HandshakeFramingRun.exitCommand) {
            require(result == .exit && sink.count == 0, "/exit")
            phase = .closed
            return
        }
        require(result == .ok, "receive returned \(result)")
        if case .message(let b) = frame, b.isEmpty { require(sink.count == 0, "a reply to an empty message"); return }
        require(sink.count == 1, "\(sink.count) replies to one message")
        let reply = sink.reply(0)
        let newline = reply.last == 0x0A
        require(newline == (framing == .line), "reply framing: \(hex(reply)) for a \(framing) session")
        let body = newline ? reply.dropLast() : reply
        if case .message(let b) = frame, b.count <= messageLimit, TextCheck.problem(in: b) == nil {
            require(body.isConcatenation(of: echoPrefix, b), "echo \(hex(body)) of \(hex(b))")
        } else {
            require(body.count >= 2 && body[body.startIndex] == 0x2A && body[body.startIndex + 1] == 0x20,
                    "refusal without a `* ` notice: \(hex(body))")
        }
    }

    static let exitCommand = Array("/exit".utf8)

    /// Frame equality with the bytes compared by memcmp.
    func sameFrame(_ a: Frame?, _ b: Frame?) -> Bool {
        switch (a, b) {
        case (nil, nil), (.tooLong?, .tooLong?): return true
        case (.message(let x)?, .message(let y)?): return same(x, y)
        default: return false
        }
    }

    func describe(_ f: Frame?) -> String {
        switch f {
        case nil: return "nil"
        case .tooLong?: return "tooLong"
        case .message(let b)?: return "message(\(hex(b)))"
        }
    }
}

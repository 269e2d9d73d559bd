// Fuzz target `peer_codec`: the inter-node line codec (PeerMessage.swift,
// docs/cluster-protocol.md).
//
// Input: bytes from a peer link. They are cut into lines at `\n` as PeerLink's framer does
// (a `\r` before the `\n` dropped). Each line is decoded twice: as the runtime does it
// (only lines that are valid UTF-8), and, for robustness, after repairing invalid UTF-8.
// An input whose first byte is 0x00 (no peer line starts so) is instead a recipe for
// building messages field by field, whose encodings must decode back to themselves.
//
// Invariants:
//   - decode never crashes, whatever the line;
//   - String and Substring inputs decode alike;
//   - anything that decodes re-encodes to one line (no `\n`) that decodes to the same
//     message, and encoding is then a fixed point (a canonical form);
//   - a decoded flooded message's header is well formed (origin a node id, seq ≤ Int64.max);
//   - the MSG fast path (`PeerChat.parse`) accepts and refuses the same lines as decode and
//     reads the same origin, seq, room, user and text; so does the HB byte path
//     (`PeerHeartbeat.parse`), with and without a known address for the origin;
//   - messages built from valid fields (names, ids, numbers, addresses, text without `\n`)
//     survive encode → frame → decode.

#if canImport(Glibc)
import Glibc
#endif

@_cdecl("LLVMFuzzerTestOneInput")
public func peerCodecFuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = size > 0 && data != nil ? Array(UnsafeBufferPointer(start: data, count: size)) : []
    if input.first == 0 {
        PeerCodecRun.structured(FuzzReader(Array(input.dropFirst())))
    } else {
        PeerCodecRun.lines(input)
    }
    return 0
}

enum PeerCodecRun {
    /// Lines (or built messages) checked per input. Each is checked on its own, so a longer
    /// input adds nothing a mutation of a shorter one cannot reach, and an input's cost stays
    /// bounded (64 lines of up to 4 KiB made the target run at ~1,500 executions a second).
    static let maxItems = 16

    static func lines(_ input: [UInt8]) {
        // The lines are cut at `\n` by memchr (a `split` here is a per-byte loop with its
        // compares traced, and the harness is not what is being fuzzed). As before: at most
        // `maxItems` lines; an input without `\n` is one line; a piece after the last `\n`
        // has no `\n` yet and is left out.
        input.withUnsafeBufferPointer { all in
            guard let base = all.baseAddress else { checkLine(all[...]); return }
            var start = 0, n = 0
            while n < maxItems, start < all.count, let p = memchr(base + start, 0x0A, all.count - start) {
                let nl = UnsafeRawPointer(p) - UnsafeRawPointer(base)
                checkLine(all[start..<nl])
                start = nl + 1
                n += 1
            }
            if n == 0 { checkLine(all[...]) }   // no `\n` at all: the whole input is the line
        }
    }

    static func checkLine(_ piece: Slice<UnsafeBufferPointer<UInt8>>) {
        var line = piece
        if line.last == 0x0D { line = line.dropLast() }
        // Valid UTF-8 decodes as the runtime sees it; anything else after repair (which
        // leaves valid UTF-8 unchanged, so checking both would check one string twice).
        if let text = String(validating: line, as: UTF8.self) { check(text) } else { check(String(decoding: line, as: UTF8.self)) }
    }

    static func check(_ text: String) {
        let fromString = Result { try PeerMessage.decode(text) }
        let fromSubstring = Result { try PeerMessage.decode(Substring(text)) }
        switch (fromString, fromSubstring) {
        case (.success(let a), .success(let b)): require(a == b, "String and Substring decode differently: \(text.debugDescription)")
        case (.failure, .failure): return
        default: fuzzFail("String and Substring disagree on decodability: \(text.debugDescription)")
        }
        checkChatFastPath(text, decoded: fromString)
        checkHeartbeatFastPath(text, decoded: fromString)
        guard case .success(let msg) = fromString else { return }
        _ = roundTrip(msg, source: text)
        if let f = msg.flood {
            require(f.seq <= UInt64(Int64.max), "seq past Int64.max")
            require(NodeID(f.origin.text) != nil, "origin is not a node id")
        }
    }

    /// `PeerChat.parse`, the cluster's allocation-free reading of a MSG line, accepts and
    /// refuses exactly the lines `PeerMessage.decode` does, and reads the same fields.
    static func checkChatFastPath(_ text: String, decoded: Result<PeerMessage, Error>) {
        var line = text
        line.withUTF8 { u in
            let fast: PeerChat?
            do { fast = try PeerChat.parse(UnsafeRawBufferPointer(u)) } catch {
                if case .success(let m) = decoded, case .chat = m { fuzzFail("PeerChat refuses a MSG decode accepts: \(text.debugDescription) (\(error))") }
                return
            }
            guard let c = fast else {
                if case .success(let m) = decoded, case .chat = m { fuzzFail("PeerChat does not see a MSG: \(text.debugDescription)") }
                return
            }
            guard case .success(.chat(let f, let room, let user, let body)) = decoded else {
                fuzzFail("PeerChat accepts a MSG decode refuses: \(text.debugDescription)")
            }
            require(c.flood == f && c.room == room && c.user == user && same(c.text, body.utf8),
                    "PeerChat and decode read \(text.debugDescription) differently")
        }
    }

    /// `PeerHeartbeat.parse`, the cluster's reading of an HB from its bytes, accepts and
    /// refuses exactly the lines `PeerMessage.decode` does and reads the same message,
    /// whether or not the origin's address is already known (then the String is reused).
    static func checkHeartbeatFastPath(_ text: String, decoded: Result<PeerMessage, Error>) {
        var line = text
        line.withUTF8 { u in
            let b = UnsafeRawBufferPointer(u)
            var knownAddress: String?
            if case .success(.heartbeat(_, let a, _, _)) = decoded { knownAddress = a }
            for known in [nil, knownAddress, "h:1"] {
                let fast: PeerMessage?
                do { fast = try PeerHeartbeat.parse(b, advertise: { _ in known }) } catch {
                    if case .success(let m) = decoded, case .heartbeat = m { fuzzFail("PeerHeartbeat refuses an HB decode accepts: \(text.debugDescription) (\(error))") }
                    continue
                }
                guard let m = fast else {
                    if case .success(let d) = decoded, case .heartbeat = d { fuzzFail("PeerHeartbeat does not see an HB: \(text.debugDescription)") }
                    continue
                }
                guard case .success(let d) = decoded else { fuzzFail("PeerHeartbeat accepts an HB decode refuses: \(text.debugDescription)") }
                require(m == d, "PeerHeartbeat and decode read \(text.debugDescription) differently")
            }
        }
    }

    /// Returns the encoded line. `source` is only built for a failure message (describing a
    /// message through reflection costs more than the whole check).
    @discardableResult
    static func roundTrip(_ msg: PeerMessage, source: @autoclosure () -> String) -> String {
        let line = msg.encoded
        require(!holdsNewline(line), "encoding holds a newline: \(line.debugDescription) (from \(source().debugDescription))")
        let back: PeerMessage
        do { back = try PeerMessage.decode(line) } catch {
            fuzzFail("re-encoded line does not decode: \(line.debugDescription) (\(error)) from \(source().debugDescription)")
        }
        require(back == msg, "decode(encode(m)) != m: \(line.debugDescription) from \(source().debugDescription)")
        require(back.encoded == line, "encoding is not canonical: \(line.debugDescription) -> \(back.encoded.debugDescription)")
        return line
    }

    /// `s.utf8.contains(0x0A)` by memchr (the element loop is traced compare by compare).
    static func holdsNewline(_ s: String) -> Bool {
        let found: Bool? = s.utf8.withContiguousStorageIfAvailable { b in
            guard let p = b.baseAddress else { return false }
            return memchr(p, 0x0A, b.count) != nil
        }
        return found ?? s.utf8.contains(0x0A)
    }

    // MARK: Messages built from fields

    static let nameAlphabet = Array("abcdefghijklmnopqrstuvwxyz0123456789/".utf8)
    static let displayAlphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/".utf8)
    static let hexDigits = Array("0123456789abcdef".utf8)

    static func node(_ r: inout FuzzReader) -> NodeID {
        let v = UInt64(r.u16()) | UInt64(r.u16()) << 16 | UInt64(r.byte()) << 56
        let s = String(unsafeUninitializedCapacity: 16) { b in
            for i in 0..<16 { b[i] = hexDigits[Int((v >> (UInt64(15 - i) * 4)) & 15)] }
            return 16
        }
        return NodeID(s)!
    }

    static func name(_ r: inout FuzzReader, max: Int, display: Bool = false) -> String {
        let alphabet = display ? displayAlphabet : nameAlphabet
        let n = 1 + Int(r.byte()) % max
        return String(unsafeUninitializedCapacity: n) { b in
            for i in 0..<n { b[i] = alphabet[Int(r.byte()) % alphabet.count] }
            return n
        }
    }

    static func number(_ r: inout FuzzReader) -> UInt64 {
        switch r.byte() & 3 {
        case 0: return UInt64(r.byte())
        case 1: return UInt64(Int64.max) - UInt64(r.byte())
        case 2: return UInt64(r.u16()) << 32 | UInt64(r.u16())
        default: return HybridClock.pack(ms: 1_700_000_000_000 + UInt64(r.u16()), counter: UInt64(r.byte()))
        }
    }

    /// Any text without `\n`: the text of a chat message, a reason, a proof, a nonce.
    static func text(_ r: inout FuzzReader, noSpaces: Bool, nonEmpty: Bool) -> String {
        let n = Int(r.byte()) % 48
        let raw = r.take(n).filter { $0 != 0x0A && !(noSpaces && $0 == 0x20) }
        var s = String(decoding: raw, as: UTF8.self)
        if nonEmpty && s.isEmpty { s = "x" }
        return s
    }

    /// A well-formed address (HostPort): port 1…65535.
    static func address(_ r: inout FuzzReader) -> String {
        let hosts = ["10.0.0.1", "[::1]", "host.example", "[fe80::1%eth0]", "h", "a-b_c.d"]
        return "\(hosts[Int(r.byte()) % hosts.count]):\(1 + Int(r.u16()) % 65535)"
    }

    /// A HELLO nonce: 1…128 letters and digits.
    static func nonce(_ r: inout FuzzReader) -> String {
        let n = 1 + Int(r.byte()) % 128
        return String(unsafeUninitializedCapacity: n) { b in
            for i in 0..<n { b[i] = displayAlphabet[Int(r.byte()) % (displayAlphabet.count - 1)] }   // no `/`
            return n
        }
    }

    /// A session or member count: 0…`Limits.maxWireCount`, the ends included.
    static func count(_ r: inout FuzzReader) -> Int {
        switch r.byte() & 3 {
        case 0: return Int(r.byte())
        case 1: return Limits.maxWireCount - Int(r.byte())
        default: return Int(UInt32(r.u16()) << 16 | UInt32(r.u16())) % (Limits.maxWireCount + 1)
        }
    }

    static func list<T>(_ r: inout FuzzReader, _ item: (inout FuzzReader) -> T) -> [T] {
        let n = Int(r.byte()) % 5
        return (0..<n).map { _ in item(&r) }
    }

    static func structured(_ input: FuzzReader) {
        var r = input
        // One framer for the whole input, as a peer link has one for its stream.
        var framer = MessageFramer(maxBytes: 16 * 1024 * 1024)
        var built = 0
        while !r.atEnd && built < maxItems {
            built += 1
            let flood = Flood(origin: node(&r), seq: number(&r))
            let msg: PeerMessage
            switch r.byte() % 12 {
            case 0:
                msg = .hello(node: node(&r), advertise: address(&r), nonce: nonce(&r), secret: r.byte() & 1 == 1)
            case 1: msg = .auth(proof: text(&r, noSpaces: false, nonEmpty: false))
            case 2: msg = .error(reason: text(&r, noSpaces: false, nonEmpty: false))
            case 3:
                msg = .heartbeat(flood, advertise: address(&r), version: number(&r),
                                 neighbors: r.byte() & 1 == 1 ? nil : list(&r) { node(&$0) })
            case 4:
                msg = .state(flood, rooms: list(&r) { name(&$0, max: Limits.maxChatIDLength) },
                             claims: list(&r) { NameClaim(name: name(&$0, max: Limits.maxUsernameLength), ts: number(&$0)) })
            case 5: msg = .room(flood, joined: r.byte() & 1 == 1, room: name(&r, max: Limits.maxChatIDLength))
            case 6: msg = .claim(flood, NameClaim(name: name(&r, max: Limits.maxUsernameLength), ts: number(&r)))
            case 7:
                msg = .reply(flood, claimant: node(&r), NameClaim(name: name(&r, max: Limits.maxUsernameLength), ts: number(&r)),
                             granted: r.byte() & 1 == 1)
            case 8: msg = .release(flood, NameClaim(name: name(&r, max: Limits.maxUsernameLength), ts: number(&r)))
            case 9: msg = .bye(flood)
            case 10:
                msg = .load(flood, sessions: count(&r),
                            rooms: list(&r) { RoomCount(room: name(&$0, max: Limits.maxChatIDLength), members: count(&$0)) })
            default:
                msg = .chat(flood, room: name(&r, max: Limits.maxChatIDLength), user: name(&r, max: Limits.maxUsernameLength, display: true),
                            text: text(&r, noSpaces: false, nonEmpty: false))
            }
            let line = roundTrip(msg, source: "built \(msg)")
            // Through the wire: the encoded line plus `\n`, cut by the peer link's framer.
            var wireLine = line
            wireLine.append("\n")
            wireLine.withUTF8 { framer.append(UnsafeRawBufferPointer($0)) }
            guard case .message(let wire)? = framer.next(), framer.next() == nil else { fuzzFail("framer did not return one line") }
            if line.utf8.last != 0x0D {
                // The framer hands over the line's bytes unchanged, so what the peer decodes is
                // decode(line), which `roundTrip` just found equal to `msg` (decode is a pure
                // function of the bytes: decoding them a second time would check nothing more).
                require(same(wire, line.utf8), "through the framer: \(hex(wire)) for \(line.debugDescription)")
            } else {
                // A line ending in `\r` loses it to the framer: it must still decode.
                guard let text = String(validating: wire, as: UTF8.self) else { fuzzFail("encoded line is not UTF-8") }
                if (try? PeerMessage.decode(text)) == nil { fuzzFail("framed line does not decode: \(text.debugDescription)") }
            }
        }
    }
}

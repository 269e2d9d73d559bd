// Fuzz target `text_check`: message validation (SPEC.md §3.3–3.4, docs/protocol.md §4).
//
// Input: byte 0 picks the message limit (see `textLimits`) and the session's framing
// (bit 7: raw); the rest is one message's text, as the framer hands it to the Hub.
//
// Invariants:
//   - TextCheck.problem says .invalidUTF8 exactly when the standard library's UTF-8
//     validation (`String(validating:as:)`) refuses the bytes, and when repairing decoding
//     changes them;
//   - for valid UTF-8 it says .controlCharacter exactly when the text holds a Unicode
//     general category Cc scalar other than TAB (per the standard library's Unicode
//     properties), which must also match the numeric ranges of the spec, or one of the
//     layout controls: a bidi embedding, override or isolate (Unicode property
//     Bidi_Control minus the plain marks LRM, RLM, ALM) or a Zl/Zp separator;
//   - its two entry points (raw buffer, generic collection) agree, on a slice at offset 1;
//   - the Hub relays exactly the messages that are non-empty, not `/exit`, within the limit
//     and without a problem (echo `<user> - <text>`), and answers every other non-empty
//     message with one `* ` notice; the framing of every reply matches the session.

let textLimits = [4096, 1, 4, 7, 16, 64, 255, 100_000]

@_cdecl("LLVMFuzzerTestOneInput")
public func textCheckFuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = size > 0 && data != nil ? Array(UnsafeBufferPointer(start: data, count: size)) : []
    TextCheckRun.run(input)
    return 0
}

/// A logged-in member of a lone hub, for one message limit and framing. Made on first use and
/// kept for the whole run: with the rate limit off, a hub's answer to a message depends only
/// on its limits and the session's framing (each input checks the counters' change, not
/// their value), while making a hub and logging in cost more than everything else an input
/// does.
final class TextCheckMember {
    let hub: Hub
    let sink = RecordingSink()
    let session: Session
    let limit: Int
    let framing: Framing
    /// The refusals this member can get, encoded once.
    let tooLong: [UInt8], invalidUTF8: [UInt8], controlCharacter: [UInt8]
    static let echoPrefix = Array("Fuzz - ".utf8)

    nonisolated(unsafe) static var all = [TextCheckMember?](repeating: nil, count: textLimits.count * 2)

    static func get(limitIndex: Int, framing: Framing) -> TextCheckMember {
        let i = limitIndex * 2 + (framing == .raw ? 1 : 0)
        if let m = all[i] { return m }
        let m = TextCheckMember(limit: textLimits[limitIndex], framing: framing)
        all[i] = m
        return m
    }

    init(limit: Int, framing: Framing) {
        self.limit = limit
        self.framing = framing
        var limits = Limits()
        limits.maxMessageBytes = limit
        limits.rateLimit = 0
        hub = Hub(limits: limits)
        guard case .accepted(let s) = hub.login(username: ChatName("Fuzz", maxLength: 32)!, chatID: ChatName("room", maxLength: 64)!,
                                                framing: framing, sink: sink)
        else { fuzzFail("a lone hub refused a login") }
        session = s
        require(sink.count == 1 && same(sink.reply(0), Notice.accepted.utf8 + (framing == .line ? [0x0A] : [])),
                "login reply \(sink.sent)")
        sink.clear()
        tooLong = Array(Notice.tooLong(limit).utf8)
        invalidUTF8 = Array(Notice.invalidUTF8.utf8)
        controlCharacter = Array(Notice.controlCharacter.utf8)
    }
}

enum TextCheckRun {
    /// Cc other than TAB, from the Unicode database the standard library carries.
    static func hasControlByProperties(_ s: String) -> Bool {
        s.unicodeScalars.contains { $0.properties.generalCategory == .control && $0 != "\t" }
    }

    /// Cc other than TAB, from the ranges the spec names: C0 but TAB, DEL, C1.
    static func hasControlByRanges(_ s: String) -> Bool {
        s.unicodeScalars.contains { u in
            let v = u.value
            return (v < 0x20 && v != 0x09) || (v >= 0x7F && v <= 0x9F)
        }
    }

    /// The bidi embeddings, overrides and isolates and the line/paragraph separators, from
    /// the Unicode database: Bidi_Control but LRM/RLM/ALM, and general categories Zl and Zp.
    static func hasLayoutControlByProperties(_ s: String) -> Bool {
        s.unicodeScalars.contains { u in
            let p = u.properties
            // LRM, RLM, ALM by value (an array literal here cost an allocation a scalar).
            return (p.isBidiControl && u.value != 0x200E && u.value != 0x200F && u.value != 0x061C)
                || p.generalCategory == .lineSeparator || p.generalCategory == .paragraphSeparator
        }
    }

    static func run(_ input: [UInt8]) {
        let cfg = input.first ?? 0
        let text = input.dropFirst()
        let framing: Framing = cfg & 0x80 != 0 ? .raw : .line

        let problem = text.withUnsafeBytes { TextCheck.problem(in: $0) }
        require(TextCheck.problem(in: text) == problem, "generic entry point (contiguous) disagrees")

        let validated = String(validating: text, as: UTF8.self)
        let repaired = String(decoding: text, as: UTF8.self)
        require((validated != nil) == same(repaired.utf8, text), "stdlib validation and repair disagree on \(hex(text))")
        if let s = validated {
            require(problem != .invalidUTF8, "valid UTF-8 refused as invalid: \(hex(text))")
            let byProps = hasControlByProperties(s)
            require(byProps == hasControlByRanges(s), "Unicode Cc and the spec's ranges disagree on \(hex(text))")
            let layout = hasLayoutControlByProperties(s)
            require(layout == s.unicodeScalars.contains { TextCheck.isLayoutControl($0.value) },
                    "isLayoutControl and the Unicode properties disagree on \(hex(text))")
            require((problem == .controlCharacter) == (byProps || layout),
                    "TextCheck says \(String(describing: problem)), Cc present: \(byProps), layout control: \(layout), text \(hex(text))")
        } else {
            require(problem == .invalidUTF8, "invalid UTF-8 accepted as \(String(describing: problem)): \(hex(text))")
        }

        // The Hub's decision on the same bytes, as one framed message of a logged-in member.
        let member = TextCheckMember.get(limitIndex: Int(cfg & 7), framing: framing)
        let hub = member.hub, sink = member.sink, limit = member.limit
        sink.clear()
        let before = hub.stats
        let result = hub.receive(.message(text), from: member.session)
        if text.elementsEqual("/exit".utf8) {
            require(result == .exit && sink.count == 0, "/exit")
            return
        }
        require(result == .ok, "receive: \(result)")
        if text.isEmpty {
            require(sink.count == 0, "an empty message got a reply")
            return
        }
        require(sink.count == 1, "\(sink.count) replies to one message")
        var reply = sink.reply(0)
        require((reply.last == 0x0A) == (framing == .line), "reply not framed for a \(framing) session: \(hex(reply))")
        if framing == .line { reply = reply.dropLast() }
        let messagesIn = hub.stats.messagesIn - before.messagesIn, refused = hub.stats.refused - before.refused
        let relayable = text.count <= limit && problem == nil
        if relayable {
            require(reply.isConcatenation(of: TextCheckMember.echoPrefix, text), "echo \(hex(reply)) of \(hex(text))")
            require(messagesIn == 1 && refused == 0, "stats: \(hub.stats) after \(before)")
        } else {
            require(same(reply, member.tooLong) || same(reply, member.invalidUTF8) || same(reply, member.controlCharacter),
                    "refusal is not a known `* ` notice: \(hex(reply))")
            if text.count > limit { require(same(reply, member.tooLong), "over the limit but \(hex(reply))") }
            else if problem == .invalidUTF8 { require(same(reply, member.invalidUTF8), "invalid but \(hex(reply))") }
            else { require(same(reply, member.controlCharacter), "control but \(hex(reply))") }
            require(messagesIn == 0 && refused == 1, "stats: \(hub.stats) after \(before)")
        }
    }
}

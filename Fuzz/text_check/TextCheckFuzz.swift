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
//   - its two entry points (raw buffer, generic collection) agree, on any slice offset;
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
            return (p.isBidiControl && !["\u{200E}", "\u{200F}", "\u{061C}"].contains(u))
                || p.generalCategory == .lineSeparator || p.generalCategory == .paragraphSeparator
        }
    }

    static func run(_ input: [UInt8]) {
        let cfg = input.first ?? 0
        let text = Array(input.dropFirst())
        let limit = textLimits[Int(cfg & 7)]
        let framing: Framing = cfg & 0x80 != 0 ? .raw : .line

        let problem = text.withUnsafeBytes { TextCheck.problem(in: $0) }
        require(TextCheck.problem(in: text) == problem, "generic entry point disagrees")
        require(TextCheck.problem(in: input.dropFirst()) == problem, "slice entry point disagrees")

        let validated = String(validating: text, as: UTF8.self)
        let repaired = String(decoding: text, as: UTF8.self)
        require((validated != nil) == repaired.utf8.elementsEqual(text), "stdlib validation and repair disagree on \(hex(text))")
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
        var limits = Limits()
        limits.maxMessageBytes = limit
        limits.rateLimit = 0
        let hub = Hub(limits: limits)
        let sink = RecordingSink()
        guard case .accepted(let session) = hub.login(username: ChatName("Fuzz", maxLength: 32)!, chatID: ChatName("room", maxLength: 64)!,
                                                      framing: framing, sink: sink)
        else { fuzzFail("a lone hub refused a login") }
        sink.sent.removeAll()
        let result = hub.receive(.message(ArraySlice(text)), from: session)
        if text.elementsEqual("/exit".utf8) {
            require(result == .exit && sink.sent.isEmpty, "/exit")
            return
        }
        require(result == .ok, "receive: \(result)")
        if text.isEmpty {
            require(sink.sent.isEmpty, "an empty message got a reply")
            return
        }
        require(sink.sent.count == 1, "\(sink.sent.count) replies to one message")
        var reply = sink.sent[0]
        require((reply.last == 0x0A) == (framing == .line), "reply not framed for a \(framing) session: \(hex(reply))")
        if framing == .line { reply.removeLast() }
        let relayable = text.count <= limit && problem == nil
        if relayable {
            require(reply == Array("Fuzz - ".utf8) + text, "echo \(hex(reply)) of \(hex(text))")
            require(hub.stats.messagesIn == 1 && hub.stats.refused == 0, "stats: \(hub.stats)")
        } else {
            let notices: [String] = [Notice.tooLong(limit), Notice.invalidUTF8, Notice.controlCharacter]
            require(notices.contains { Array($0.utf8) == reply }, "refusal is not a known `* ` notice: \(hex(reply))")
            if text.count > limit { require(reply == Array(Notice.tooLong(limit).utf8), "over the limit but \(hex(reply))") }
            else if problem == .invalidUTF8 { require(reply == Array(Notice.invalidUTF8.utf8), "invalid but \(hex(reply))") }
            else { require(reply == Array(Notice.controlCharacter.utf8), "control but \(hex(reply))") }
            require(hub.stats.messagesIn == 0 && hub.stats.refused == 1, "stats: \(hub.stats)")
        }
    }
}

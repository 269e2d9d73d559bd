import ChatCore
import Testing
@testable import ChatClient

@Suite struct HandshakeReplyTests {
    private func parse(_ s: String) -> HandshakeReply? { HandshakeReply.parse(Array(s.utf8)) }

    @Test func codes() {
        #expect(parse("200") == .accepted(framing: nil, rest: []))
        #expect(parse("200\n") == .accepted(framing: .line, rest: []))
        #expect(parse("200\r\n") == .accepted(framing: .line, rest: []))
        #expect(parse("403") == .nameTaken)
        #expect(parse("403\n") == .nameTaken)
        #expect(parse("400") == .malformed)
    }

    @Test func messagesRightBehindTheReplyAreKept() {
        #expect(parse("200\nbob - hi\n") == .accepted(framing: .line, rest: Array("bob - hi\n".utf8)))
        #expect(parse("200bob - hi") == .accepted(framing: .raw, rest: Array("bob - hi".utf8)))
    }

    @Test func partialAndUnexpected() {
        #expect(parse("") == nil)
        #expect(parse("2") == nil)
        #expect(parse("40") == nil)
        #expect(parse("5") == .unexpected(Array("5".utf8)))
        #expect(parse("401") == .unexpected(Array("401".utf8)))
        #expect(parse("HTTP/1.1 400") == .unexpected(Array("HTTP/1.1 400".utf8)))
    }
}

@Suite struct IncomingSplitterTests {
    private func msgs(_ items: [IncomingSplitter.Item]) -> [String] {
        items.map { if case .message(let m) = $0 { String(decoding: m, as: UTF8.self) } else { "<exit>" } }
    }

    @Test func lineSessionWaitsForNewlines() {
        var s = IncomingSplitter(framing: .line)
        #expect(msgs(s.feed(Array("bob - h".utf8))) == [])
        #expect(msgs(s.feed(Array("i\r\nann - yo\n\nx".utf8))) == ["bob - hi", "ann - yo"])
        #expect(msgs(s.finish()) == ["x"])
    }

    @Test func rawSessionTakesEachReadAsAMessage() {
        var s = IncomingSplitter(framing: .raw)
        #expect(msgs(s.feed(Array("bob - hi".utf8))) == ["bob - hi"])
        #expect(msgs(s.feed(Array("ann - a\nann - b".utf8))) == ["ann - a", "ann - b"])
    }

    @Test func rawSessionKeepsACharacterCutByTheRead() {
        var s = IncomingSplitter(framing: .raw)
        let bytes = Array("bob - 日本".utf8)
        #expect(msgs(s.feed(bytes.dropLast())) == ["bob - 日"])
        #expect(msgs(s.feed(bytes.suffix(1))) == ["本"])
    }

    @Test func exitEndsTheStream() {
        var line = IncomingSplitter(framing: .line)
        #expect(msgs(line.feed(Array("bob - hi\n/exit\nlater\n".utf8))) == ["bob - hi", "<exit>"])
        var raw = IncomingSplitter(framing: .raw)
        #expect(msgs(raw.feed(Array("/exit".utf8))) == ["<exit>"])
    }

    @Test func rawExitGluedToAMessageIsRemembered() {
        var raw = IncomingSplitter(framing: .raw)
        _ = raw.feed(Array("bob - hi/exit".utf8))
        #expect(raw.lastChunkEndedWithExit)
        _ = raw.feed(Array("bob - more".utf8))
        #expect(!raw.lastChunkEndedWithExit)
    }

    @Test func newlineOfABare200IsSkippedOnce() {
        var s = IncomingSplitter(framing: .line, skipLeadingNewline: true)
        #expect(msgs(s.feed(Array("\nbob - hi\n".utf8))) == ["bob - hi"])
        var t = IncomingSplitter(framing: .line, skipLeadingNewline: true)
        #expect(msgs(t.feed(Array("bob - hi\n".utf8))) == ["bob - hi"])
    }

    @Test func unterminatedLineIsCutAtTheCap() {
        var s = IncomingSplitter(framing: .line, maxPending: 8)
        #expect(msgs(s.feed(Array("0123456789".utf8))) == ["0123456789"])
    }
}

@Suite struct OutboxTests {
    @Test func lineSessionSendsEachMessageWithANewlineAndSaysExit() {
        var o = Outbox(framing: .line)
        o.enqueue(.message(Array("hi".utf8)))
        o.enqueue(.message(Array("yo".utf8)))
        o.enqueue(.goodbye)
        let r = o.release(nowMs: 0)
        #expect(r.bytes == Array("hi\nyo\n/exit\n".utf8))
        #expect(r.goodbye)
    }

    @Test func rawSessionSendsBareMessagesSpacedApartAndLeavesSilently() {
        var o = Outbox(framing: .raw, rawGapMs: 200)
        o.enqueue(.message(Array("hi".utf8)))
        o.enqueue(.message(Array("yo".utf8)))
        o.enqueue(.goodbye)
        let a = o.release(nowMs: 1000)
        #expect(a.bytes == Array("hi".utf8))
        #expect(a.nextMs == 1200)
        let early = o.release(nowMs: 1100)
        #expect(early.bytes.isEmpty && !early.goodbye && early.nextMs == 1200)
        let b = o.release(nowMs: 1200)
        #expect(b.bytes == Array("yo".utf8))
        #expect(!o.release(nowMs: 1300).goodbye)   // the last message gets its gap too
        let c = o.release(nowMs: 1400)
        #expect(c.bytes.isEmpty && c.goodbye)
        #expect(o.isEmpty)
    }

    @Test func rawSessionHoldsTheFirstMessageAfterThe200() {
        var o = Outbox(framing: .raw, rawGapMs: 200, acceptedAtMs: 5000)
        o.enqueue(.message(Array("first".utf8)))
        #expect(o.release(nowMs: 5050).bytes.isEmpty)
        #expect(o.release(nowMs: 5200).bytes == Array("first".utf8))
        var line = Outbox(framing: .line, acceptedAtMs: 5000)
        line.enqueue(.message(Array("first".utf8)))
        #expect(line.release(nowMs: 5000).bytes == Array("first\n".utf8))
    }
}

@Suite struct ConfigurationTests {
    @Test func namesArePolicedBeforeConnecting() {
        var c = ClientConfiguration(host: "localhost", port: 8888, username: "alice", chatID: "room/1")
        #expect(c.problem() == nil)
        c.username = "al ice"
        #expect(c.problem()?.hasPrefix("Invalid username") == true)
        c.username = String(repeating: "a", count: 33)
        #expect(c.problem() != nil)
        c.username = "a_b"
        #expect(c.problem() != nil)
        c.username = "alice"
        c.chatID = String(repeating: "r", count: 65)
        #expect(c.problem()?.hasPrefix("Invalid chat id") == true)
        c.chatID = "r"
        c.port = 0
        #expect(c.problem()?.hasPrefix("Invalid port") == true)
    }

    @Test func handshakeIsALineUnlessRaw() {
        let c = ClientConfiguration(host: "::1", port: 9, username: "alice", chatID: "room")
        #expect(c.mode == .auto)
        #expect(c.handshake(.line) == Array("alice_room\n".utf8))
        #expect(c.handshake(.bare) == Array("alice_room".utf8))
        #expect(HandshakePlan.first(.auto) == .line)
        #expect(HandshakePlan.first(.line) == .line)
        #expect(HandshakePlan.first(.raw) == .bare)
        #expect(c.address == "[::1]:9")
    }
}

@Suite struct HandshakePlanTests {
    private func step(_ mode: HandshakePlan.Mode, _ attempt: HandshakePlan.Attempt, _ s: String, grace: Bool = false) -> HandshakePlan.Step {
        HandshakePlan.step(mode: mode, attempt: attempt, received: Array(s.utf8), graceOver: grace)
    }

    @Test func aNodeAnswersALineHandshakeWith200AndANewline() {
        for mode in [HandshakePlan.Mode.auto, .line] {
            #expect(step(mode, .line, "200\n") == .chat(framing: .line, rest: []))
            #expect(step(mode, .line, "200\r\n") == .chat(framing: .line, rest: []))
            #expect(step(mode, .line, "200\nbob - hi\n") == .chat(framing: .line, rest: Array("bob - hi\n".utf8)))
            #expect(step(mode, .line, "403\n") == .refused(.nameTaken))
            #expect(step(mode, .line, "20") == .wait)
            #expect(step(mode, .line, "") == .wait)
        }
    }

    /// The original server answers `alice_room\n` with a bare `200` (and puts us in room
    /// `room\n`): after the grace for the newline, auto falls back; --line refuses.
    @Test func aBare200ToALineHandshakeIsNotANode() {
        #expect(step(.auto, .line, "200") == .wait)
        #expect(step(.auto, .line, "200\r") == .wait)
        #expect(step(.auto, .line, "200", grace: true) == .fallBack(accepted: true))
        #expect(step(.auto, .line, "200bob - hi") == .fallBack(accepted: true))
        #expect(step(.line, .line, "200") == .wait)
        #expect(step(.line, .line, "200", grace: true) == .notLineNode(Array("200".utf8)))
        #expect(step(.line, .line, "200bob - hi") == .notLineNode(Array("200bob - hi".utf8)))
    }

    @Test func a400ToALineHandshakeFallsBackOnlyInAuto() {
        #expect(step(.auto, .line, "400") == .fallBack(accepted: false))
        #expect(step(.line, .line, "400") == .refused(.malformed))
        #expect(step(.auto, .bare, "400") == .refused(.malformed))
        #expect(step(.auto, .line, "403") == .refused(.nameTaken))
        #expect(step(.auto, .line, "HTTP/1.1") == .refused(.unexpected(Array("HTTP/1.1".utf8))))
    }

    @Test func aBareHandshakeMakesARawSession() {
        for mode in HandshakePlan.Mode.allCases {
            #expect(step(mode, .bare, "200") == .chat(framing: .raw, rest: []))
            #expect(step(mode, .bare, "200bob - hi") == .chat(framing: .raw, rest: Array("bob - hi".utf8)))
            #expect(step(mode, .bare, "403") == .refused(.nameTaken))
        }
    }
}

import Testing
@testable import ChatCore

/// A SessionSink that records what it is sent, framed per its session.
final class RecordingSink: SessionSink {
    var received: [String] = []
    var finished: [Session?] = []
    var ended = false
    func loginFinished(_ session: Session?) { finished.append(session) }
    func endSession() { ended = true }
    func enqueue(_ payload: Payload, length: Int) {
        received.append(String(decoding: UnsafeRawBufferPointer(rebasing: payload.bytes[0..<length]), as: UTF8.self))
    }
}

@Suite struct HubTests {
    let hub = Hub(limits: Limits())

    func name(_ s: String) -> ChatName { ChatName(s, maxLength: 64)! }

    @discardableResult
    func login(_ user: String, _ room: String, _ framing: Framing = .line) -> (RecordingSink, Session?) {
        let sink = RecordingSink()
        if case .accepted(let s) = hub.login(username: name(user), chatID: name(room), framing: framing, sink: sink) {
            return (sink, s)
        }
        return (sink, nil)
    }

    func say(_ s: Session, _ text: String) -> Hub.InputResult {
        hub.receive(.message(ArraySlice(Array(text.utf8))), from: s)
    }

    @Test func loginRepliesByFraming() {
        let (line, _) = login("alice", "r", .line)
        let (raw, _) = login("bob", "r", .raw)
        #expect(line.received == ["200\n"])
        #expect(raw.received == ["200"])
    }

    @Test func duplicateNameInAnyCaseIs403() {
        login("Alice", "r")
        let (sink, s) = login("aLICE", "other")
        #expect(s == nil)
        #expect(sink.received == ["403\n"])
    }

    @Test func messageReachesWholeRoomIncludingSenderOnly() {
        let (a, sa) = login("alice", "General")
        let (b, _) = login("bob", "general", .raw)
        let (c, _) = login("carol", "elsewhere")
        #expect(say(sa!, "hi") == .ok)
        #expect(a.received.last == "alice - hi\n")
        #expect(b.received.last == "alice - hi")
        #expect(c.received == ["200\n"])
    }

    @Test func exitIsNotRelayed() {
        let (a, sa) = login("alice", "r")
        let (b, _) = login("bob", "r")
        #expect(say(sa!, "/exit") == .exit)
        #expect(a.received == ["200\n"])
        #expect(b.received == ["200\n"])
    }

    @Test func badTextGetsNoticeAndIsNotRelayed() {
        let (a, sa) = login("alice", "r")
        let (b, _) = login("bob", "r")
        _ = say(sa!, "bad \u{1B}[2J")
        _ = hub.receive(.message(ArraySlice([0x66, 0xFF])), from: sa!)
        _ = hub.receive(.tooLong, from: sa!)
        #expect(a.received.count == 4)
        #expect(a.received.dropFirst().allSatisfy { $0.hasPrefix("* ") && $0.hasSuffix("\n") })
        #expect(b.received == ["200\n"])
    }

    @Test func emptyMessageIsIgnored() {
        let (a, sa) = login("alice", "r")
        #expect(say(sa!, "") == .ok)
        #expect(a.received == ["200\n"])
    }

    @Test func logoutFreesNameAndDropsEmptyRoom() {
        let (_, sa) = login("alice", "r")
        let (_, sb) = login("bob", "r")
        hub.logout(sa!)
        #expect(hub.rooms["r"]?.members.count == 1)
        let (_, again) = login("ALICE", "x")
        #expect(again != nil)
        hub.logout(sb!)
        #expect(hub.rooms["r"] == nil)
    }

    @Test func removingMiddleMemberKeepsOthersReachable() {
        var sinks: [RecordingSink] = []
        var sessions: [Session] = []
        for i in 0..<5 {
            let (k, s) = login("u\(i)", "r")
            sinks.append(k); sessions.append(s!)
        }
        hub.logout(sessions[1])
        hub.logout(sessions[3])
        _ = say(sessions[0], "x")
        #expect(sinks.enumerated().map { $0.element.received.last == "u0 - x\n" } == [true, false, true, false, true])
    }
}

@Suite struct RateLimiterTests {
    @Test func burstThenSteadyRate() {
        var r = RateLimiter(rate: 10, nowMs: 0)
        var taken = 0
        while r.take(nowMs: 0) { taken += 1 }
        #expect(taken == 20)
        do { let v = r.waitMs(nowMs: 0); #expect(v == 100) }
        do { let v = r.take(nowMs: 99); #expect(!v) }
        do { let v = r.take(nowMs: 100); #expect(v) }
    }

    @Test func zeroMeansUnlimited() {
        var r = RateLimiter(rate: 0, nowMs: 0)
        var all = true
        for _ in 0..<10_000 where !r.take(nowMs: 0) { all = false }
        #expect(all)
    }
}

@Suite struct RatePauseTests {
    @Test func pausesOnlyWithBytesWaitingAndAnEmptyBucket() {
        var p = RatePause(rate: 10, nowMs: 0)
        for _ in 0..<20 { p.take(nowMs: 0) }
        do { let v = p.pauseNeeded(pending: false, nowMs: 0); #expect(v == nil) }
        do { let v = p.pauseNeeded(pending: true, nowMs: 0); #expect(v == 100) }
        do { let v = p.pauseNeeded(pending: true, nowMs: 100); #expect(v == nil) }
    }

    @Test func resumesOnceDueAndTellsOnlyTheFirstTime() {
        var p = RatePause(rate: 10, nowMs: 0)
        do { let v = p.endPause(); #expect(!v) }
        p.pause(for: 100, nowMs: 50)
        #expect(p.isPaused && p.resumeDeadline == 150)
        do { let v = p.shouldTell(); #expect(v) }
        do { let v = p.resumeIsDue(nowMs: 149); #expect(!v) }
        do { let v = p.resumeIsDue(nowMs: 150); #expect(v) }
        #expect(p.resumeDeadline == nil && p.isPaused)
        do { let v = p.endPause(); #expect(v && !p.isPaused) }
        p.pause(for: 100, nowMs: 200)
        do { let v = p.shouldTell(); #expect(!v) }
    }

    @Test func unlimitedNeverPauses() {
        var p = RatePause(rate: 0, nowMs: 0)
        for _ in 0..<10_000 { p.take(nowMs: 0) }
        do { let v = p.pauseNeeded(pending: true, nowMs: 0); #expect(v == nil) }
    }
}

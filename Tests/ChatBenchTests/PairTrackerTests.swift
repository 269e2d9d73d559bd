import Testing
@testable import ChatBench
import TestSupport

@Suite struct PairTrackerTests {
    @Test func inOrderMessagesAreNeitherLateNorLost() {
        var t = PairTracker()
        for s: UInt32 in 0..<1000 { #expect(t.record(s) == .inOrder) }
        #expect(t.unique == 1000)
        #expect(t.lost(of: 1000) == 0)
        #expect(t.lostTail(of: 1000) == 0)
    }

    @Test func aGapIsLossUnlessTheMessageComesLate() {
        var t = PairTracker()
        for s: UInt32 in [0, 1, 3, 4] { #expect(t.record(s) == .inOrder) }
        #expect(t.lost(of: 5) == 1)
        #expect(t.lostTail(of: 5) == 0, "the hole is in the middle")
        #expect(t.record(2) == .late)
        #expect(t.lost(of: 5) == 0)
        #expect(t.lost(of: 8) == 3)
        #expect(t.lostTail(of: 8) == 3)
    }

    @Test func duplicatesAreCaughtWithinTheWindow() {
        var t = PairTracker()
        for s: UInt32 in 0..<100 { _ = t.record(s) }
        #expect(t.record(99) == .duplicate)
        #expect(t.record(36) == .duplicate, "63 below the highest: still in the bitmap")
        #expect(t.unique == 100)
        // A late message the bitmap still covers, then its duplicate.
        var u = PairTracker()
        _ = u.record(0)
        _ = u.record(10)
        #expect(u.record(5) == .late)
        #expect(u.record(5) == .duplicate)
        #expect(u.record(0) == .duplicate)
        #expect(u.unique == 3)
    }

    @Test func aJumpOfMoreThan64ClearsTheWindow() {
        var t = PairTracker()
        _ = t.record(0)
        #expect(t.record(100) == .inOrder)
        #expect(t.record(0) == .late, "beyond the 64-message bitmap: counted late, not duplicate")
        #expect(t.record(50) == .late)
        #expect(t.record(50) == .duplicate)
    }
}

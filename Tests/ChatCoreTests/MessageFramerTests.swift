import Testing
@testable import ChatCore

@Suite struct MessageFramerTests {
    func feed(_ f: inout MessageFramer, _ s: String) { f.append(contentsOf: Array(s.utf8)) }
    func text(_ frame: Frame?) -> String? {
        if case .message(let b)? = frame { return String(decoding: b, as: UTF8.self) }
        return nil
    }

    @Test func cutsAtNewlineAndDropsCR() {
        var f = MessageFramer(maxBytes: 100)
        feed(&f, "one\ntwo\r\nthr")
        do { let v = text(f.next()); #expect(v == "one") }
        do { let v = text(f.next()); #expect(v == "two") }
        do { let v = f.next(); #expect(v == nil) }
        #expect(f.hasPartial)
        feed(&f, "ee\n")
        do { let v = text(f.next()); #expect(v == "three") }
        #expect(!f.hasPartial)
    }

    @Test func silenceCompletesPartial() {
        var f = MessageFramer(maxBytes: 100)
        feed(&f, "alice_room")
        do { let v = f.next(); #expect(v == nil) }
        do { let v = text(f.flushPartial()); #expect(v == "alice_room") }
        do { let v = f.flushPartial(); #expect(v == nil) }
    }

    @Test func byteByByteSplitGivesSameMessages() {
        var f = MessageFramer(maxBytes: 100)
        var got: [String] = []
        for b in Array("a\nbb\r\n\nccc\n".utf8) {
            f.append(contentsOf: [b])
            while let m = f.next() { got.append(text(m)!) }
        }
        #expect(got == ["a", "bb", "", "ccc"])
    }

    @Test func overLongLineIsRefusedOnceAndSkipped() {
        var f = MessageFramer(maxBytes: 4)
        feed(&f, "12345678")
        do { let v = f.next(); #expect(v == .tooLong) }
        feed(&f, "9999")
        do { let v = f.next(); #expect(v == nil) }
        feed(&f, "99\nok\n")
        do { let v = text(f.next()); #expect(v == "ok") }
        do { let v = f.next(); #expect(v == nil) }
    }

    @Test func exactLimitWithCRLFIsAccepted() {
        var f = MessageFramer(maxBytes: 4)
        feed(&f, "1234\r")
        do { let v = f.next(); #expect(v == nil) }
        feed(&f, "\n")
        do { let v = text(f.next()); #expect(v == "1234") }
        feed(&f, "12345\n")
        do { let v = f.next(); #expect(v == .tooLong) }
    }

    @Test func overLongPartialAtSilenceIsRefused() {
        var f = MessageFramer(maxBytes: 4)
        feed(&f, "12345")
        do { let v = f.next(); #expect(v == nil) }
        do { let v = f.flushPartial(); #expect(v == .tooLong) }
    }
}

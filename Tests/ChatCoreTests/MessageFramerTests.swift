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
        #expect(text(f.next()) == "one")
        #expect(text(f.next()) == "two")
        #expect(f.next() == nil)
        #expect(f.hasPartial)
        feed(&f, "ee\n")
        #expect(text(f.next()) == "three")
        #expect(!f.hasPartial)
    }

    @Test func silenceCompletesPartial() {
        var f = MessageFramer(maxBytes: 100)
        feed(&f, "alice_room")
        #expect(f.next() == nil)
        #expect(text(f.flushPartial()) == "alice_room")
        #expect(f.flushPartial() == nil)
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
        #expect(f.next() == .tooLong)
        feed(&f, "9999")
        #expect(f.next() == nil)
        feed(&f, "99\nok\n")
        #expect(text(f.next()) == "ok")
        #expect(f.next() == nil)
    }

    @Test func exactLimitWithCRLFIsAccepted() {
        var f = MessageFramer(maxBytes: 4)
        feed(&f, "1234\r")
        #expect(f.next() == nil)
        feed(&f, "\n")
        #expect(text(f.next()) == "1234")
        feed(&f, "12345\n")
        #expect(f.next() == .tooLong)
    }

    @Test func overLongPartialAtSilenceIsRefused() {
        var f = MessageFramer(maxBytes: 4)
        feed(&f, "12345")
        #expect(f.next() == nil)
        #expect(f.flushPartial() == .tooLong)
    }
}

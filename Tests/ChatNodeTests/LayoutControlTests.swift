/// Bidi embeddings, overrides and isolates (U+202A…U+202E, U+2066…U+2069) and the line and
/// paragraph separators (U+2028, U+2029) could reorder or split what a receiver's terminal
/// shows (`mallory - ‮…` reversing the line, or a fake `bob - …` line): a real node refuses
/// them like control characters, relays nothing, and keeps the session.
import ChatCore
import Testing

@Suite("Layout controls")
struct LayoutControlTests {
    @Test("bidi and separator characters are refused with a notice",
          arguments: [0x202A, 0x202B, 0x202C, 0x202D, 0x202E, 0x2066, 0x2067, 0x2068, 0x2069, 0x2028, 0x2029] as [UInt32])
    func refusedWithNoticeAndNotRelayed(_ v: UInt32) throws {
        let c = String(Unicode.Scalar(v)!)
        try withNode { node in
            let alice = try LineClient.join("alice", "room", port: node.port)
            let bob = try LineClient.join("bob", "room", port: node.port)
            try alice.send("hi \(c)ih - bob\n")
            #expect(try alice.readLine() == Notice.controlCharacter)
            try alice.send("still ok\n")
            #expect(try alice.readLine() == "alice - still ok")
            #expect(try bob.readLine() == "alice - still ok", "bob must get nothing of U+\(String(v, radix: 16))")
        }
    }

    @Test func refusedInARawSessionToo() throws {
        try withNode { node in
            let alice = try LineClient.joinRaw("alice", "room", port: node.port)
            let bob = try LineClient.join("bob", "room", port: node.port)
            try alice.send("x\u{2028}bob - forged")   // ended by silence
            try alice.expectBytes(Notice.controlCharacter)
            try alice.send("fine")
            try alice.expectBytes("alice - fine")
            #expect(try bob.readLine() == "alice - fine")
        }
    }

    @Test func neighboursOfTheRangesAreRelayed() throws {
        try withNode { node in
            let alice = try LineClient.join("alice", "room", port: node.port)
            let bob = try LineClient.join("bob", "room", port: node.port)
            let text = "a\u{2027}b\u{202F}c\u{2065}d\u{206A}e \u{200F}שלום"
            try alice.send(text + "\n")
            #expect(try bob.readLine() == "alice - \(text)")
        }
    }
}

/// docs/protocol.md §1: the handshake `<USERNAME>_<CHAT_ID>` and its replies 200 / 400 / 403.
import Testing
import ChatCore
import TestSupport

@Suite("Handshake")
struct HandshakeTests {
    @Test func lineHandshakeIsAnswered200WithNewline() throws {
        try withNode { node in
            let c = try LineClient.connect(port: node.port, label: "alice")
            try c.send("alice_room\n")
            try c.expectBytes("200\n")
        }
    }

    @Test func rawHandshakeEndedBySilenceIsAnsweredBare200() throws {
        try withNode { node in
            let c = try LineClient.connect(port: node.port, label: "alice")
            try c.send("alice_room")
            try c.expectBytes("200")
            // Nothing follows the bare 200: the first bytes after it are the echo of our message.
            try c.send("hi")
            try c.expectBytes("alice - hi")
        }
    }

    @Test("malformed handshakes get 400 and the connection closes", arguments: [
        "aliceroom",                                     // no `_`
        "_room",                                         // empty username
        "alice_",                                        // empty chat id
        "_",                                             // both empty
        "al ice_room",                                   // space
        "alice_ro-om",                                   // `-`
        "al\u{e9}ce_room",                               // non-ASCII letter
        "alice_room_2",                                  // two `_`
        String(repeating: "u", count: 33) + "_room",     // username of 33
        "alice_" + String(repeating: "c", count: 65),    // chat id of 65
    ])
    func malformedHandshakeGets400AndClose(_ handshake: String) throws {
        try withNode { node in
            let c = try LineClient.connect(port: node.port, label: "client")
            try c.send(handshake + "\n")
            let reply = try c.readLine()
            #expect(reply == "400", "handshake \"\(handshake)\\n\"")
            let rest = try c.expectClosed()
            #expect(rest.isEmpty, "after 400 the node sent \(describe(rest))")
        }
    }

    @Test func rawMalformedHandshakeGetsBare400() throws {
        try withNode { node in
            let c = try LineClient.connect(port: node.port, label: "client")
            try c.send("no-separator")
            let all = try c.expectClosed()
            #expect(all == Array("400".utf8), "got \(describe(all))")
        }
    }

    @Test func longestNamesAreAccepted() throws {
        try withNode { node in
            let user = String(repeating: "U", count: 32)
            let chat = String(repeating: "c/", count: 32)   // 64 characters, `/` allowed
            let c = try LineClient.join(user, chat, port: node.port)
            try c.send("hi\n")
            #expect(try c.readLine() == "\(user) - hi")
        }
    }

    @Test func sameNameInAnotherCaseGets403AndClose() throws {
        try withNode { node in
            let alice = try LineClient.join("Alice", "room", port: node.port)
            let again = try LineClient.connect(port: node.port, label: "alice#2")
            try again.send("alice_other\n")
            #expect(try again.readLine() == "403")
            let rest = try again.expectClosed()
            #expect(rest.isEmpty, "after 403 the node sent \(describe(rest))")
            // The first session is untouched.
            try alice.send("still here\n")
            #expect(try alice.readLine() == "Alice - still here")
        }
    }

    @Test func rawDuplicateGetsBare403() throws {
        try withNode { node in
            let alice = try LineClient.join("alice", "room", port: node.port)
            let again = try LineClient.connect(port: node.port, label: "alice#2")
            try again.send("ALICE_room")
            let all = try again.expectClosed()
            #expect(all == Array("403".utf8), "got \(describe(all))")
            alice.close()
        }
    }

    @Test func nameIsFreeAgainAfterDisconnect() throws {
        try withNode { node in
            let first = try LineClient.join("alice", "room", port: node.port)
            first.close()
            // The node notices the close asynchronously: ask again until it has (bounded).
            let second = try retry(for: .seconds(3), "alice logs in again after her first session closed") { () -> LineClient? in
                let c = try LineClient.connect(port: node.port, label: "alice#2")
                try c.send("ALICE_room\n")
                let reply = try c.readLine()
                if reply == "200" { return c }
                guard reply == "403" else { throw E2EError("expected 200 or 403, got \"\(reply)\"") }
                return nil
            }
            try second.send("back\n")
            #expect(try second.readLine() == "ALICE - back")
        }
    }

    @Test func nameIsFreeAgainAfterExit() throws {
        try withNode { node in
            let first = try LineClient.join("alice", "room", port: node.port)
            try first.send("/exit\n")
            try first.expectClosed()
            let second = try retry(for: .seconds(3), "alice logs in again after /exit") { () -> LineClient? in
                let c = try LineClient.connect(port: node.port, label: "alice#2")
                try c.send("alice_room\n")
                let reply = try c.readLine()
                if reply == "200" { return c }
                guard reply == "403" else { throw E2EError("expected 200 or 403, got \"\(reply)\"") }
                return nil
            }
            second.close()
        }
    }

    @Test func roomNamesAreCaseInsensitive() throws {
        try withNode { node in
            let alice = try LineClient.join("alice", "General", port: node.port)
            let bob = try LineClient.join("bob", "general", port: node.port)
            try alice.send("hello\n")
            #expect(try bob.readLine() == "alice - hello")
            #expect(try alice.readLine() == "alice - hello")
        }
    }

    @Test func displayKeepsTheCaseGiven() throws {
        try withNode { node in
            let alice = try LineClient.join("AlIcE", "room", port: node.port)
            let bob = try LineClient.join("bob", "ROOM", port: node.port)
            try alice.send("hi\n")
            #expect(try bob.readLine() == "AlIcE - hi")
        }
    }

    @Test func silentConnectionIsClosedAfterHandshakeTimeout() throws {
        try withNode(["--handshake-timeout", "0.5"]) { node in
            let c = try LineClient.connect(port: node.port, label: "silent")
            let got = try c.expectClosed(timeout: .seconds(4))
            #expect(got.isEmpty || got == Array("400\n".utf8) || got == Array("400".utf8),
                    "a silent connection got \(describe(got))")
        }
    }

    @Test func tooManyHandshakeBytesWithoutNewlineClose() throws {
        // A long silence window, so only the byte limit can end this handshake in time.
        try withNode(["--silence-ms", "10000", "--max-handshake-bytes", "256"]) { node in
            let c = try LineClient.connect(port: node.port, label: "flooder")
            try c.send(String(repeating: "a", count: 300))
            let got = try c.expectClosed(timeout: .seconds(3))
            #expect(got.isEmpty || got == Array("400\n".utf8) || got == Array("400".utf8),
                    "got \(describe(got))")
        }
    }

    @Test func ipv6LoopbackWorks() throws {
        guard Loopback.hasIPv6 else {
            print("ipv6LoopbackWorks: skipped, this machine has no IPv6 loopback (::1)")
            try Test.cancel("no IPv6 loopback (::1) on this machine")
        }
        try withNode(address: "::1") { node in
            let alice = try LineClient.join("alice", "room", port: node.port, host: "::1")
            let bob = try LineClient.join("bob", "room", port: node.port, host: "::1")
            try alice.send("over six\n")
            #expect(try bob.readLine() == "alice - over six")
        }
    }
}

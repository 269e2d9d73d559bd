/// docs/protocol.md §3: what a member sends reaches every member of its room, in order.
import Testing
import TestSupport

@Suite("Chat")
struct ChatTests {
    @Test func senderGetsItsOwnMessageBack() throws {
        try withNode { node in
            let alice = try LineClient.join("alice", "room", port: node.port)
            try alice.send("hi\n")
            #expect(try alice.readLine() == "alice - hi")
        }
    }

    @Test func messageReachesEveryMemberOfTheRoom() throws {
        try withNode { node in
            let alice = try LineClient.join("alice", "room", port: node.port)
            let bob = try LineClient.join("bob", "room", port: node.port)
            let carol = try LineClient.join("carol", "room", port: node.port)
            try bob.send("hello all\n")
            for member in [alice, bob, carol] {
                #expect(try member.readLine() == "bob - hello all", "member \(member.label)")
            }
        }
    }

    @Test func messageDoesNotReachAnotherRoom() throws {
        try withNode { node in
            let alice = try LineClient.join("alice", "red", port: node.port)
            let bob = try LineClient.join("bob", "red", port: node.port)
            let carol = try LineClient.join("carol", "blue", port: node.port)
            try alice.send("for red only\n")
            #expect(try bob.readLine() == "alice - for red only")
            // bob has it, so the node has fanned it out. Had it gone to carol too, it would
            // sit in her stream ahead of her own later message.
            try carol.send("blue marker\n")
            #expect(try carol.readLine() == "carol - blue marker")
            #expect(try alice.readLine() == "alice - for red only")
        }
    }

    @Test func oneSendersMessagesArriveInOrderAndComplete() throws {
        try withNode(["--rate-limit", "0"]) { node in
            let alice = try LineClient.join("alice", "room", port: node.port)
            let bob = try LineClient.join("bob", "room", port: node.port)
            let carol = try LineClient.join("carol", "room", port: node.port)
            let count = 500
            let text = (1...count).map { "message \($0)\n" }.joined()
            try alice.send(text)
            let expected = (1...count).map { "alice - message \($0)" }
            for receiver in [bob, carol, alice] {
                let got = try receiver.readLines(count, timeout: .seconds(10))
                if let i = got.indices.first(where: { got[$0] != expected[$0] }) {
                    Issue.record("\(receiver.label): line \(i + 1) is \"\(got[i])\", expected \"\(expected[i])\"")
                }
            }
        }
    }

    @Test func messagesOfSeveralSendersAllArrive() throws {
        try withNode(["--rate-limit", "0"]) { node in
            let alice = try LineClient.join("alice", "room", port: node.port)
            let bob = try LineClient.join("bob", "room", port: node.port)
            try alice.send((1...50).map { "a\($0)\n" }.joined())
            try bob.send((1...50).map { "b\($0)\n" }.joined())
            for receiver in [alice, bob] {
                let got = try receiver.readLines(100)
                // Each sender's own order holds; how the two interleave is the node's choice.
                #expect(got.filter { $0.hasPrefix("alice - ") } == (1...50).map { "alice - a\($0)" }, "at \(receiver.label)")
                #expect(got.filter { $0.hasPrefix("bob - ") } == (1...50).map { "bob - b\($0)" }, "at \(receiver.label)")
            }
        }
    }

    @Test func exitDisconnectsTheSenderAndIsNotRelayed() throws {
        try withNode { node in
            let alice = try LineClient.join("alice", "room", port: node.port)
            let bob = try LineClient.join("bob", "room", port: node.port)
            try alice.send("/exit\n")
            let tail = try alice.expectClosed()
            // Whether the node answers `/exit` first is its choice; nothing else may come.
            #expect(tail.isEmpty || tail == Array("/exit\n".utf8), "alice got \(describe(tail)) before the close")
            try bob.send("after\n")
            #expect(try bob.readLine() == "bob - after", "bob must not see alice's /exit")
        }
    }

    @Test func emptyMessagesAreIgnored() throws {
        try withNode { node in
            let alice = try LineClient.join("alice", "room", port: node.port)
            let bob = try LineClient.join("bob", "room", port: node.port)
            try alice.send("\n\r\n\n")
            try alice.send("real\n")
            #expect(try bob.readLine() == "alice - real")
            #expect(try alice.readLine() == "alice - real")
        }
    }

    @Test func utf8TextIsRelayedAsIs() throws {
        try withNode { node in
            let alice = try LineClient.join("alice", "room", port: node.port)
            let bob = try LineClient.join("bob", "room", port: node.port)
            try alice.send("héllo wörld – 你好 🙂\n")
            #expect(try bob.readLine() == "alice - héllo wörld – 你好 🙂")
        }
    }

    @Test func othersChatOnAfterAMemberLeaves() throws {
        try withNode { node in
            let alice = try LineClient.join("alice", "room", port: node.port)
            let bob = try LineClient.join("bob", "room", port: node.port)
            bob.close()
            // Sending to a member who is gone must not disturb the others.
            for i in 1...5 {
                try alice.send("n\(i)\n")
                #expect(try alice.readLine() == "alice - n\(i)")
            }
        }
    }
}

/// docs/protocol.md §4–5: the outgoing queue cap (slow consumers) and the per-client rate limit.
import ChatCore
import Foundation
import Testing
import TestSupport

@Suite("Limits")
struct LimitsTests {
    @Test func memberThatStopsReadingIsDroppedWhileOthersGetEverything() throws {
        try withNode(["--max-queue-bytes", "65536", "--rate-limit", "0"]) { node in
            let alice = try LineClient.join("alice", "room", port: node.port)
            let bob = try LineClient.join("bob", "room", port: node.port)
            // A tiny receive window from the start: the node's queue for snail fills fast.
            let snail = try LineClient.join("snail", "room", port: node.port, receiveBufferBytes: 4096)

            // alice floods until the node has closed its side of snail's connection: past
            // what the kernel buffers for snail (its send buffer can grow to megabytes) plus
            // the 64 KiB queue. She keeps at most `window` messages unechoed, so the healthy
            // members' queues stay small: what is measured is snail not reading, not a burst.
            let filler = String(repeating: "p", count: 1000)
            let cap = 16_000, window = 16
            func text(_ i: Int) -> String { "\(i) \(filler)" }
            var sent = 0, echoed = 0, bobGot = 0
            var total: Int?   // fixed once snail is seen dropped: alice stops there
            var bobWrong = false   // the first message out of place is reported, not every one after
            func checkBob(_ lines: [String]) {
                for line in lines {
                    if !bobWrong && line != "alice - \(text(bobGot))" {
                        bobWrong = true
                        Issue.record("bob: message \(bobGot) is \(describe(Array(line.utf8), limit: 40))")
                    }
                    bobGot += 1
                }
            }
            // Seen without reading snail's buffers: either the node's side of the connection
            // is closing (FIN_WAIT1, its FIN stuck behind snail's full window), or the kernel
            // reset it (an orphan holding megabytes may be killed at once).
            let snailPort = snail.localPort
            func nodeClosed(_ snail: LineClient) -> Bool {
                if snail.isResetOrHungUp { return true }
                guard let state = TCPTable.state(localPort: node.port, remotePort: snailPort) else { return false }
                return state != TCPTable.established
            }
            let deadline = Deadline(.seconds(30))
            while total.map({ echoed < $0 }) ?? true {
                while total == nil && sent < cap && sent - echoed < window {
                    try alice.send(text(sent) + "\n")
                    sent += 1
                }
                if echoed == sent { break }
                let echo = try alice.readLine()
                guard echo == "alice - \(text(echoed))" else {
                    throw E2EError("alice: echo \(echoed) is \(describe(Array(echo.utf8), limit: 40))")
                }
                echoed += 1
                checkBob(try bob.availableLines())
                if total == nil && echoed % 32 == 0 && nodeClosed(snail) {
                    total = sent
                }
                if deadline.expired { throw E2EError("flood not done in 30 s: \(echoed) echoed") }
            }
            guard let total else {
                throw E2EError("snail, who never reads, was still connected after \(cap) messages of 1 KB")
            }
            checkBob(try bob.readLines(total - bobGot, timeout: .seconds(10)))
            #expect(bobGot == total)

            // snail was cut off: after what its buffers held, the connection ends.
            try snail.expectClosed(timeout: .seconds(10))
            #expect(snail.bytesReceived < total * 1000, "snail got \(snail.bytesReceived) bytes: everything")

            // The sender and the reader were never dropped.
            try alice.send("done\n")
            #expect(try alice.readLine() == "alice - done")
            #expect(try bob.readLine() == "alice - done")

            _ = try retry(for: .seconds(2), "the node logs the slow consumer it dropped") { () -> Bool? in
                let log = node.stderr.lowercased()
                return log.contains("slow") || log.contains("queue") ? true : nil
            }
        }
    }

    @Test func manySlowConsumersAreBoundedByTheNodesTotalCap() throws {
        // Each snail alone stays under its own (large) queue cap; together they pass the
        // node's total cap, so they are dropped, while the readers lose nothing.
        try withNode(["--max-queue-bytes", "67108864", "--max-total-queue-bytes", "1048576", "--rate-limit", "0"]) { node in
            let alice = try LineClient.join("alice", "room", port: node.port)
            let bob = try LineClient.join("bob", "room", port: node.port)
            let snails = try (0..<6).map { try LineClient.join("snail\($0)", "room", port: node.port, receiveBufferBytes: 4096) }
            let ports = snails.map(\.localPort)
            func allClosed() -> Bool {
                zip(snails, ports).allSatisfy { snail, port in
                    snail.isResetOrHungUp
                        || TCPTable.state(localPort: node.port, remotePort: port).map { $0 != TCPTable.established } ?? true
                }
            }
            let filler = String(repeating: "q", count: 1000)
            func text(_ i: Int) -> String { "\(i) \(filler)" }
            var sent = 0, echoed = 0, bobGot = 0
            var total: Int?
            let window = 16, cap = 40_000
            let deadline = Deadline(.seconds(40))
            while total.map({ echoed < $0 }) ?? true {
                while total == nil && sent < cap && sent - echoed < window {
                    try alice.send(text(sent) + "\n")
                    sent += 1
                }
                if echoed == sent { break }
                let echo = try alice.readLine()
                guard echo == "alice - \(text(echoed))" else { throw E2EError("alice: echo \(echoed) is \(echo.prefix(40))") }
                echoed += 1
                for line in try bob.availableLines() {
                    guard line == "alice - \(text(bobGot))" else { throw E2EError("bob: message \(bobGot) is \(line.prefix(40))") }
                    bobGot += 1
                }
                if total == nil && echoed % 64 == 0 && allClosed() { total = sent }
                if deadline.expired { throw E2EError("flood not done in 40 s: \(echoed) echoed") }
            }
            guard let total else { throw E2EError("the snails were still connected after \(cap) messages of 1 KB") }
            for line in try bob.readLines(total - bobGot, timeout: .seconds(10)) {
                guard line == "alice - \(text(bobGot))" else { throw E2EError("bob: message \(bobGot) is \(line.prefix(40))") }
                bobGot += 1
            }
            #expect(bobGot == total)
            try alice.send("done\n")
            #expect(try alice.readLine() == "alice - done")
            #expect(try bob.readLine() == "alice - done")
            _ = try retry(for: .seconds(2), "the node logs the total cap") { () -> Bool? in
                node.stderr.contains("all clients' queues over 1048576 bytes") ? true : nil
            }
        }
    }

    @Test func floodOverTheRateLimitIsDelayedNotLostWithOneNotice() throws {
        try withNode(["--rate-limit", "10"]) { node in   // burst 20; 30 messages take ~1 s
            let alice = try LineClient.join("alice", "room", port: node.port)
            let bob = try LineClient.join("bob", "room", port: node.port)
            let count = 30
            try alice.send((1...count).map { "m\($0)\n" }.joined())
            let expected = (1...count).map { "alice - m\($0)" }
            #expect(try bob.readLines(count, timeout: .seconds(10)) == expected)

            let got = try alice.readLines(count + 1, timeout: .seconds(10))
            let notices = got.filter { $0.hasPrefix("* ") }
            #expect(notices == [Notice.rateLimited(10)], "alice got notices \(notices)")
            #expect(got.filter { !$0.hasPrefix("* ") } == expected)
            // No second notice is pending: alice's next line is her next message.
            try alice.send("last\n")
            #expect(try alice.readLine(timeout: .seconds(5)) == "alice - last")
        }
    }

    @Test func noRateNoticeWhenTheLimitIsOff() throws {
        try withNode(["--rate-limit", "0"]) { node in
            let alice = try LineClient.join("alice", "room", port: node.port)
            let count = 300
            try alice.send((1...count).map { "m\($0)\n" }.joined())
            try alice.send("last\n")
            let got = try alice.readLines(count + 1)
            #expect(got == (1...count).map { "alice - m\($0)" } + ["alice - last"])
        }
    }

    @Test func rateLimitedSenderDoesNotHoldUpOthers() throws {
        try withNode(["--rate-limit", "10"]) { node in   // alice's 30th message comes ~1 s late
            let alice = try LineClient.join("alice", "room", port: node.port)
            let bob = try LineClient.join("bob", "room", port: node.port)
            let carol = try LineClient.join("carol", "room", port: node.port)
            try alice.send((1...30).map { "m\($0)\n" }.joined())
            #expect(try carol.readLines(20) == (1...20).map { "alice - m\($0)" })   // the burst
            try bob.send("not waiting\n")
            let rest = try carol.readLines(11, timeout: .seconds(10))
            let bobAt = rest.firstIndex(of: "bob - not waiting")
            #expect(bobAt != nil && bobAt! < 10, "bob's message came after all of alice's: \(rest)")
            #expect(rest.filter { $0.hasPrefix("alice - ") } == (21...30).map { "alice - m\($0)" })
        }
    }

    @Test func rateLimitPauseDoesNotCutAMessage() throws {
        // The node stops reading alice after her burst; the silence rule must not count
        // that pause and cut the message it interrupted (docs/protocol.md §2).
        try withNode(["--rate-limit", "4"]) { node in   // burst 8
            let alice = try LineClient.join("alice", "room", port: node.port)
            let bob = try LineClient.join("bob", "room", port: node.port)
            try alice.send((1...8).map { "m\($0)\n" }.joined() + "m9 first half")
            Thread.sleep(forTimeInterval: 0.03)   // the second half is a separate write
            try alice.send(", second half\n")
            let got = try bob.readLines(9, timeout: .seconds(10))
            #expect(got == (1...8).map { "alice - m\($0)" } + ["alice - m9 first half, second half"])
        }
    }
}

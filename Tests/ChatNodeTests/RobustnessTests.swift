/// SPEC.md §3.4: garbage, vanishing clients and running out of file descriptors are
/// survived; the node keeps serving everyone else.
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

@Suite("Robustness")
struct RobustnessTests {
    @Test func junkFromManyConnectionsIsSurvived() throws {
        try withNode { node in
            var rng = SplitMix64(seed: 0x7C9_C4A7)
            var junk: [LineClient] = []
            for i in 0..<200 {
                let c = try LineClient.connect(port: node.port, label: "junk#\(i)")
                let count = Int.random(in: 1...700, using: &rng)
                let bytes = (0..<count).map { _ in UInt8.random(in: 0...255, using: &rng) }
                try c.send(bytes: bytes)
                if i % 10 == 9 {
                    c.reset()           // gone mid-handshake, with a reset
                } else {
                    junk.append(c)
                }
            }
            // None of it is a handshake: every connection gets closed (400, or too many bytes).
            let deadline = Deadline(.seconds(10))
            for c in junk {
                let got = try c.expectClosed(timeout: max(.zero, deadline.end - .now))
                #expect(got.isEmpty || got == Array("400".utf8) || got == Array("400\n".utf8),
                        "\(c.label) got \(describe(got))")
            }
            let alice = try LineClient.join("alice", "room", port: node.port)
            let bob = try LineClient.join("bob", "room", port: node.port)
            try alice.send("all good?\n")
            #expect(try bob.readLine() == "alice - all good?")
            try bob.send("all good\n")
            #expect(try alice.readLines(2) == ["alice - all good?", "bob - all good"])
            #expect(node.isRunning)
        }
    }

    @Test func junkAfterTheHandshakeGetsNoticesNotADisconnect() throws {
        try withNode(["--rate-limit", "0"]) { node in
            let alice = try LineClient.join("alice", "room", port: node.port)
            let bob = try LineClient.join("bob", "room", port: node.port)
            var rng = SplitMix64(seed: 42)
            // Random bytes, one line at a time, never a newline inside: each line is refused
            // (invalid UTF-8 or control characters) or, rarely, relayed; never fatal.
            for _ in 0..<50 {
                var line = (0..<Int.random(in: 1...200, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
                line.removeAll { $0 == 0x0A || $0 == 0x0D }
                line.insert(0xFF, at: 0)          // surely refused, so bob sees none of it
                try alice.send(bytes: line + [0x0A])
            }
            try alice.send("sane\n")
            #expect(try bob.readLine() == "alice - sane")
            let got = try alice.readLines(51)
            #expect(got.prefix(50).allSatisfy { $0.hasPrefix("* ") }, "alice got \(got.prefix(50).filter { !$0.hasPrefix("* ") })")
            #expect(got.last == "alice - sane")
        }
    }

    @Test func memberVanishingMidStreamDoesNotDisturbOthers() throws {
        try withNode(["--rate-limit", "0"]) { node in
            let alice = try LineClient.join("alice", "room", port: node.port)
            let bob = try LineClient.join("bob", "room", port: node.port)
            let carol = try LineClient.join("carol", "room", port: node.port, receiveBufferBytes: 4096)
            let filler = String(repeating: "v", count: 400)
            for i in 0..<200 {
                try alice.send("\(i) \(filler)\n")
                if i == 100 { carol.reset() }   // carol never read; now she is gone, with a reset
                if i % 20 == 19 {               // keep alice's and bob's streams moving
                    _ = try alice.readLines(20)
                    let lines = try bob.readLines(20)
                    #expect(lines == (i - 19...i).map { "alice - \($0) \(filler)" })
                }
            }
            try alice.send("end\n")
            #expect(try bob.readLine() == "alice - end")
            #expect(node.isRunning)
        }
    }

    @Test func runningOutOfFileDescriptorsIsSurvived() throws {
        // The connection budget derived from the fd limit would shed connections before the
        // limit is reached (`connectionBudgetDerivedFromTheFdLimitShedsBeforeEMFILE`): raise
        // it past the limit to drive the node into EMFILE itself.
        try withNode(["--max-connections", "1000", "--max-pending-connections", "1000"], fdLimit: 64) { node in
            var held: [LineClient] = []
            let connecting = Deadline(.seconds(10))
            for i in 0..<100 where !connecting.expired {
                // Past the node's limit some are shed by the node; some may not even connect.
                if let c = try? LineClient.connect(port: node.port, label: "fd#\(i)", timeout: .seconds(1)) {
                    held.append(c)
                }
            }
            // The premise: the node really is at its limit (64 descriptors, a few kept spare).
            _ = try retry(for: .seconds(3), "the node holds close to 64 descriptors") { () -> Bool? in
                (try node.openDescriptors()) >= 56 ? true : nil
            }
            // At its limit, with connections still knocking, the node must not spin.
            let before = try node.cpuSeconds()
            Thread.sleep(forTimeInterval: 1.0)   // a measuring window, not a synchronisation
            let used = try node.cpuSeconds() - before
            #expect(used < 0.5, "the node used \(used) s of CPU in 1 s while out of file descriptors")

            for c in held { c.close() }
            held.removeAll()
            let alice = try retry(for: .seconds(5), "a new client gets 200 once the descriptors are free") {
                try LineClient.join("alice", "room", port: node.port)
            }
            let bob = try retry(for: .seconds(5), "a second new client gets 200") {
                try LineClient.join("bob", "room", port: node.port)
            }
            try alice.send("fds back\n")
            #expect(try bob.readLine() == "alice - fds back")

            let idleBefore = try node.cpuSeconds()
            Thread.sleep(forTimeInterval: 0.5)
            let idleUsed = try node.cpuSeconds() - idleBefore
            #expect(idleUsed < 0.25, "the node used \(idleUsed) s of CPU in 0.5 s idle after EMFILE")
            #expect(node.isRunning)
        }
    }

    /// With the default budget (the fd limit less a reserve) the node sheds connections
    /// itself, with a log line, and never runs out of descriptors.
    @Test func connectionBudgetDerivedFromTheFdLimitShedsBeforeEMFILE() throws {
        try withNode(fdLimit: 64) { node in
            var held: [LineClient] = []
            for i in 0..<80 {
                if let c = try? LineClient.connect(port: node.port, label: "fd#\(i)", timeout: .seconds(1)) { held.append(c) }
            }
            _ = try retry(for: .seconds(5), "the node to log that it shed connections") { () -> Bool? in
                node.stderrTail.contains("connection limit reached") || node.stderrTail.contains("too many connections waiting") ? true : nil
            }
            #expect(try node.openDescriptors() < 60, "the node ran close to its fd limit")
            #expect(!node.stderrTail.contains("cannot accept connections"), "the node hit EMFILE:\n\(node.stderrTail)")
            for c in held { c.close() }
            let alice = try retry(for: .seconds(5), "a new client gets 200 once the others left") {
                try LineClient.join("alice", "room", port: node.port)
            }
            try alice.send("ok\n")
            #expect(try alice.readLine() == "alice - ok")
        }
    }
}

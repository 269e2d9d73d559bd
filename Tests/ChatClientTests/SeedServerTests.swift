import Foundation
import Testing

/// End to end against the ORIGINAL Python server (cn_tcp_server 0.0.2): our client in its
/// default mode (line handshake, then the bare one: docs/protocol.md §2) and with `--raw`
/// must work with it as the original client does.
@Suite(.serialized, .enabled(if: TestEnv.seedTestsEnabled, "original server not found: set TCP_CHAT_SEED_DIR"))
struct SeedServerTests {
    private func start() throws -> (SeedServer, String)? {
        guard let dir = TestEnv.seedDirectory else {
            TestEnv.unavailable("original server not found at $TCP_CHAT_SEED_DIR or /tmp/seed/cn_tcp_server-0.0.2")
            return nil
        }
        return (try SeedServer(seedDirectory: dir), try TestEnv.requireBinary())
    }

    @Test func chatsThroughTheOriginalServer() throws {
        guard let (server, bin) = try start() else { return }
        let bob = try RawSocket(port: server.port)
        bob.send("bob_room")
        #expect(bob.read { $0.count >= 3 })
        #expect(bob.receivedText == "200")

        let alice = try Child(bin, ["client", "-a", "127.0.0.1", "-p", "\(server.port)", "-u", "alice", "-c", "room"])
        defer { if !alice.stderr.text.isEmpty { print("client stderr:", alice.stderr.text) } }
        #expect(alice.stdout.wait(for: "Connected to 127.0.0.1:\(server.port) as alice in room room. Type /exit to leave.\n", timeout: 10))

        alice.write("hi from alice\n")
        #expect(bob.read(untilContains: "alice - hi from alice"))
        #expect(alice.stdout.wait(for: "alice - hi from alice\n", timeout: 5))   // the original echoes

        bob.send("hello from bob")
        #expect(alice.stdout.wait(for: "bob - hello from bob\n", timeout: 5))
        // The original relays anything: bidi and separator characters are shown inert.
        bob.send("x\u{202E}y\u{2028}z")
        #expect(alice.stdout.wait(for: "bob - x<U+202E>y<U+2028>z\n", timeout: 5))

        alice.closeStdin()
        #expect(alice.waitForExit(timeout: 5) == 0)
        // The server prints this once it has handled everything alice sent and her EOF:
        // once for the line handshake the client left (the original answers it with a bare
        // `200`, see docs/protocol.md §2), once for the session. (Its threads print
        // concurrently, so the words may interleave with other output: count the last one.)
        #expect(eventually(5) { server.child.stdout.text.components(separatedBy: "disconnected").count - 1 == 2 },
                "server output:\n\(server.child.stdout.text)")
        bob.read(timeout: 0.2) { _ in false }   // collect what is already there
        // Raw session: the message went bare (no stray "\n" relayed to bob), and leaving sent
        // no "/exit" (the original server would have relayed it as "alice - /exit").
        #expect(bob.receivedText == "200alice - hi from alicebob - hello from bobbob - x\u{202E}y\u{2028}z")
        #expect(alice.stderr.text == "")
    }

    @Test func duplicateNameGets403AndExitCode1() throws {
        guard let (server, bin) = try start() else { return }
        let bob = try RawSocket(port: server.port)
        bob.send("bob_room")
        #expect(bob.read { $0.count >= 3 })

        let dup = try Child(bin, ["client", "-a", "127.0.0.1", "-p", "\(server.port)", "-u", "bob", "-c", "other"])
        #expect(dup.waitForExit(timeout: 10) == 1)
        #expect(dup.stderr.wait(for: "The name bob is already connected.\n", timeout: 5))
        #expect(!dup.stdout.text.contains("Connected"))
    }

    /// `--raw` skips the line handshake: one connection, as the original client makes.
    @Test func rawModeChatsWithOneConnection() throws {
        guard let (server, bin) = try start() else { return }
        let bob = try RawSocket(port: server.port)
        bob.send("bob_room")
        #expect(bob.read { $0.count >= 3 })
        let alice = try Child(bin, ["client", "-a", "127.0.0.1", "-p", "\(server.port)", "-u", "alice", "-c", "room", "--raw"])
        #expect(alice.stdout.wait(for: "Connected to 127.0.0.1:\(server.port) as alice in room room.", timeout: 10))
        alice.write("hi\n")
        #expect(bob.read(untilContains: "alice - hi"))
        alice.closeStdin()
        #expect(alice.waitForExit(timeout: 5) == 0)
        #expect(server.child.stdout.wait(for: "disconnected", timeout: 5))
        #expect(server.child.stdout.text.components(separatedBy: "Connected to").count - 1 == 2)   // bob and alice
        #expect(server.child.stdout.text.components(separatedBy: "disconnected").count - 1 == 1)
    }
}

import Foundation
import Glibc
import Testing

/// The terminal client in its default mode against a real tcp_chat node: it gets a line
/// session (docs/protocol.md §2), so messages the node writes together are still separate
/// lines, and what the node refuses (bidi overrides, separators) never reaches it.
@Suite struct NodeClientTests {
    /// `tcp_chat server` on a free loopback port; stopped (SIGTERM) when released.
    private final class Node {
        let child: Child
        let port: Int
        init(_ bin: String) throws {
            child = try Child(bin, ["server", "-a", "127.0.0.1", "-p", "0"])
            try #require(child.stdout.wait(for: "\n", timeout: 20), "node did not start: \(child.stderr.text)")
            let line = child.stdout.text.split(separator: "\n").first.map(String.init) ?? ""
            try #require(line.hasPrefix("listening on 127.0.0.1:"), "node said \(line)")
            port = try #require(Int(line.split(separator: ":").last ?? ""))
        }
        deinit { child.stop() }
    }

    @Test func defaultClientGetsALineSessionFromANode() throws {
        let bin = try TestEnv.requireBinary()
        let node = try Node(bin)
        let mallory = try RawSocket(port: node.port)
        mallory.send("mallory_room\n")
        #expect(mallory.read { $0.count >= 4 })
        #expect(mallory.receivedText == "200\n")

        let alice = try Child(bin, ["client", "-a", "127.0.0.1", "-p", "\(node.port)", "-u", "alice", "-c", "room"])
        #expect(alice.stdout.wait(for: "Connected to 127.0.0.1:\(node.port) as alice in room room. Type /exit to leave.\n", timeout: 10))
        // No fallback happened: one connection, so typing goes out at once.
        alice.write("hi\n")
        #expect(mallory.read(untilContains: "alice - hi\n"))

        // Two messages in one packet: the node relays them in one turn, possibly one write;
        // in a line session they are two lines whatever the reads.
        mallory.send("one\ntwo/exit\n")
        #expect(alice.stdout.wait(for: "mallory - one\nmallory - two/exit\n", timeout: 5))

        // A right-to-left override and a line separator: refused by the node, mallory gets
        // the notice, alice nothing.
        mallory.send("x\u{202E}kcab\u{2028}bob - forged\n")
        #expect(mallory.read(untilContains: "* message holds control characters; not sent\n"))
        mallory.send("after\n")
        #expect(alice.stdout.wait(for: "mallory - after\n", timeout: 5))
        #expect(!alice.stdout.text.contains("kcab") && !alice.stdout.text.contains("forged"))
        #expect(alice.waitForExit(timeout: 0.1) == nil)

        alice.write("/exit\n")   // line session: "/exit\n" goes to the node, which closes
        #expect(alice.waitForExit(timeout: 5) == 0)
        #expect(mallory.read(untilContains: "alice - hi\n"))
        #expect(!mallory.receivedText.contains("alice - /exit"))
        #expect(alice.stderr.text == "")
    }
}

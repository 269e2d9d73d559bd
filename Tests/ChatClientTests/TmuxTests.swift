import Foundation
import Glibc
import Testing
import TestSupport

/// The interactive client in a real terminal (a tmux pane of fixed size): an incoming
/// message must land on its own line and leave the half-typed input intact.
@Suite(.serialized, .enabled(if: (TestEnv.tmuxPath != nil && TestEnv.seedDirectory != nil) || TestEnv.isCI,
                             "needs tmux and the original server (TCP_CHAT_SEED_DIR)"))
struct TmuxTests {
    /// Runs `tmux -L <socket> -f /dev/null ARGS` and returns its stdout.
    private struct Tmux {
        let path: String
        let socket = "chatclient-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"

        /// Runs a tmux command and returns its stdout. Spawned directly, not with Foundation's
        /// Process, which reports an exit only once every inheritor of its internal pipe is
        /// gone: for `new-session` that is the tmux server, which lives on.
        @discardableResult
        func callAsFunction(_ args: String...) -> String {
            var env = TestEnv.env
            env["LC_ALL"] = "C.UTF-8"   // so tmux passes UTF-8 keys and text through
            return runTool([path, "-u", "-L", socket, "-f", "/dev/null"] + args, environment: env)
        }

        /// Stops the server and removes its socket file (tmux leaves it behind).
        func shutdown() {
            self("kill-server")
            unlink((TestEnv.env["TMUX_TMPDIR"] ?? "/tmp") + "/tmux-\(getuid())/\(socket)")
        }

        /// The pane's visible lines, trailing blanks dropped.
        func screen() -> [String] {
            var lines = self("capture-pane", "-p", "-t", "chat").components(separatedBy: "\n")
            while let last = lines.last, last.trimmingCharacters(in: .whitespaces).isEmpty { lines.removeLast() }
            return lines.map { $0.replacingOccurrences(of: "\\s+$", with: "", options: .regularExpression) }
        }
    }

    @Test func incomingMessageDoesNotGarbleThePartialInput() throws {
        guard let tmuxPath = TestEnv.tmuxPath else { TestEnv.unavailable("tmux not installed"); return }
        guard let seedDir = TestEnv.seedDirectory else { TestEnv.unavailable("original server not found"); return }
        let bin = try TestEnv.requireBinary()
        let server = try SeedServer(seedDirectory: seedDir)
        let bob = try RawSocket(port: server.port)
        bob.send("bob_room")
        #expect(bob.read { $0.count >= 3 })

        let tmux = Tmux(path: tmuxPath)
        defer { tmux.shutdown() }
        // The shell around the client reports its exit code and whether the terminal settings
        // came back exactly, then keeps the pane open for capture.
        let command = "S=$(stty -g); '\(bin)' client -a 127.0.0.1 -p \(server.port) -u alice -c room; "
            + "echo EXIT=$?; [ \"$(stty -g)\" = \"$S\" ] && echo TTY-RESTORED; sleep 30"
        tmux("new-session", "-d", "-s", "chat", "-x", "100", "-y", "20", command)

        let connected = "Connected to 127.0.0.1:\(server.port) as alice in room room. Type /exit to leave."
        try #require(eventually(.seconds(10)) { tmux.screen().contains(connected) && tmux.screen().last == ">" },
                     "client did not start: \(tmux.screen())")

        tmux("send-keys", "-t", "chat", "-l", "partial héllo日")
        tmux("send-keys", "-t", "chat", "BSpace")   // removes the whole "日"
        #expect(eventually(.seconds(5)) { tmux.screen().last == "> partial héllo" }, "\(tmux.screen())")

        bob.send("how are you?")
        let arrived = eventually(.seconds(5)) {
            let s = tmux.screen()
            return s.suffix(2) == ["bob - how are you?", "> partial héllo"]
        }
        let screen = tmux.screen()
        #expect(arrived, "\(screen)")
        // Nothing garbled: the message and the input never share a line.
        #expect(!screen.contains { $0.contains("bob -") && $0.contains("partial") })

        tmux("send-keys", "-t", "chat", "-l", " done")
        tmux("send-keys", "-t", "chat", "Enter")
        #expect(bob.read(untilContains: "alice - partial héllo done"))
        #expect(eventually(.seconds(5)) { tmux.screen().suffix(2) == ["alice - partial héllo done", ">"] }, "\(tmux.screen())")

        tmux("send-keys", "-t", "chat", "-l", "/exit")
        tmux("send-keys", "-t", "chat", "Enter")
        #expect(eventually(.seconds(5)) { tmux.screen().contains("TTY-RESTORED") }, "\(tmux.screen())")
        #expect(tmux.screen().contains("EXIT=0"))
    }

    @Test func ctrlCLeavesCleanlyAndRestoresTheTerminal() throws {
        guard let tmuxPath = TestEnv.tmuxPath else { TestEnv.unavailable("tmux not installed"); return }
        guard let seedDir = TestEnv.seedDirectory else { TestEnv.unavailable("original server not found"); return }
        let bin = try TestEnv.requireBinary()
        let server = try SeedServer(seedDirectory: seedDir)

        let tmux = Tmux(path: tmuxPath)
        defer { tmux.shutdown() }
        let command = "S=$(stty -g); '\(bin)' client -a 127.0.0.1 -p \(server.port) -u carol -c room; "
            + "echo EXIT=$?; [ \"$(stty -g)\" = \"$S\" ] && echo TTY-RESTORED; sleep 30"
        tmux("new-session", "-d", "-s", "chat", "-x", "80", "-y", "10", command)
        try #require(eventually(.seconds(10)) { tmux.screen().last == ">" }, "client did not start: \(tmux.screen())")
        tmux("send-keys", "-t", "chat", "-l", "unsent")
        #expect(eventually(.seconds(5)) { tmux.screen().last == "> unsent" })
        tmux("send-keys", "-t", "chat", "C-c")
        #expect(eventually(.seconds(5)) { tmux.screen().contains("TTY-RESTORED") }, "\(tmux.screen())")
        #expect(tmux.screen().contains("EXIT=0"))
        #expect(!tmux.screen().contains { $0.hasPrefix(">") })   // the prompt line was cleared
        #expect(server.child.stdout.wait(for: "carol disconnected", timeout: 5))
    }
}

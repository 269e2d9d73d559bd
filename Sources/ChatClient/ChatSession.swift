import ChatCore
import Glibc

/// The chat itself, after `200`: one thread, one poll(2) over the signal pipe, the socket
/// and stdin. Every exit path returns through `run()`, which restores the terminal.
final class ChatSession {
    /// How the session ended: exit code, and the line to print (stdout when the code is 0).
    struct Outcome { var code: Int32; var message: String? }

    private enum State {
        case chatting
        /// Piped stdin hit EOF: print what still arrives, then leave (see `checkTimers`).
        case inputEnded(quietSince: UInt64?)
        /// Goodbye queued; hard deadline for getting it out.
        case leaving(deadline: UInt64)
        /// Our side is shut down; wait (bounded) for the node to close its side.
        case closing(deadline: UInt64)
    }

    /// After stdin EOF: leave once the socket has been quiet this long...
    static let quietMs: UInt64 = 300
    /// ...or this long after the last message went out, whichever is first.
    static let lingerMs: UInt64 = 1_000
    /// Bounds on getting the goodbye out and on the node closing after it.
    static let leaveMs: UInt64 = 2_000
    static let closeMs: UInt64 = 500
    /// Stop reading stdin while this much waits for the socket (a slow node, a big pipe).
    static let maxBacklogBytes = 262_144

    private let fd: Int32
    private let signals: SignalPipe
    private let terminal: RawTerminal?
    private var editor: LineEditor
    private var splitter: IncomingSplitter
    private var outbox: Outbox
    /// Released by the outbox, not yet taken by the socket.
    private var unsent: [UInt8] = []
    private var nextOutboxMs: UInt64?
    private var goodbyeOut = false
    /// Non-interactive stdin is cut into lines like a line session's input (`/exit` included).
    private var stdinLines = IncomingSplitter(framing: .line)
    private var stdinOpen = true
    private var state = State.chatting
    private var leaveCode: Int32 = 0
    private var lastBusyMs: UInt64 = 0
    private var outcome: Outcome?

    init(fd: Int32, framing: Framing, signals: SignalPipe, terminal: RawTerminal?) {
        self.fd = fd
        self.signals = signals
        self.terminal = terminal
        self.editor = LineEditor(prompt: "> ", columns: terminal != nil ? RawTerminal.columns() : 80,
                                 maxBytes: Limits().maxMessageBytes)
        self.splitter = IncomingSplitter(framing: framing)
        self.outbox = Outbox(framing: framing, acceptedAtMs: Posix.nowMs())
    }

    private var interactive: Bool { terminal != nil }

    /// Runs until the session ends. `early` are bytes that came right behind the `200`.
    func run(early: [UInt8]) -> Outcome {
        if interactive { Posix.writeAll(STDOUT_FILENO, editor.render()) }
        handleSocketData(early)
        while outcome == nil {
            step()
        }
        if interactive {
            Posix.writeAll(STDOUT_FILENO, editor.clear())
            terminal?.restore()
        }
        return outcome!
    }

    private func step() {
        let now = Posix.nowMs()
        if unsent.isEmpty {
            let r = outbox.release(nowMs: now)
            unsent += r.bytes
            nextOutboxMs = r.nextMs
            if r.goodbye { goodbyeOut = true }
        }
        flushSocket()
        if goodbyeOut, unsent.isEmpty, case .leaving = state {
            TLSClient.closeNotify(fd)
            shutdown(fd, Int32(SHUT_WR))     // the node sees EOF: that is all the original server knows
            state = .closing(deadline: now + Self.closeMs)
        }
        checkTimers(now)
        guard outcome == nil else { return }

        let readStdin: Bool
        switch state {
        case .chatting: readStdin = stdinOpen && unsent.count + outbox.queuedBytes < Self.maxBacklogBytes
        default: readStdin = false
        }
        var fds = [
            pollfd(fd: signals.readFD, events: Int16(POLLIN), revents: 0),
            pollfd(fd: fd, events: Int16(POLLIN) | (unsent.isEmpty ? 0 : Int16(POLLOUT)), revents: 0),
            pollfd(fd: readStdin ? STDIN_FILENO : -1, events: Int16(POLLIN), revents: 0),
        ]
        _ = Posix.poll(&fds, timeoutMs: timeout(now))

        for sig in signals.take() { handleSignal(sig) }
        if outcome == nil, fds[1].revents & Int16(POLLIN | POLLHUP | POLLERR) != 0 { readSocket() }
        if outcome == nil, fds[2].revents != 0 { readStdinNow(invalid: fds[2].revents & Int16(POLLNVAL) != 0) }
    }

    // MARK: - Socket

    private func flushSocket() {
        guard !unsent.isEmpty else { return }
        let n = Posix.send(fd, unsent[...])
        if n < 0 {
            lost(Int32(-n))
            return
        }
        unsent.removeFirst(n)
    }

    private func readSocket() {
        switch Posix.read(fd) {
        case .data(let bytes):
            lastBusyMs = Posix.nowMs()
            handleSocketData(bytes)
        case .wouldBlock:
            break
        case .eof:
            for item in splitter.finish() { display(item) }
            if isLeaving { end(leaveCode) }
            else if splitter.lastChunkEndedWithExit { end(0, "The node closed the connection.") }
            else { end(1, "The node closed the connection.") }
        case .error(let e):
            lost(e)
        }
    }

    private func handleSocketData(_ bytes: [UInt8]) {
        for item in splitter.feed(bytes) {
            guard outcome == nil else { return }
            display(item)
        }
    }

    private func display(_ item: IncomingSplitter.Item) {
        switch item {
        case .exit:
            // The node is closing the session (it also does so after our own goodbye).
            isLeaving ? end(leaveCode) : end(0, "The node closed the connection.")
        case .message(let bytes):
            // While leaving an interactive session the prompt is going away: stay quiet.
            if isLeaving && interactive { return }
            let text = Sanitizer.displayText(bytes)
            Posix.writeAll(STDOUT_FILENO, interactive ? editor.show(text) : text + "\n")
        }
    }

    private func lost(_ error: Int32) {
        if isLeaving { end(leaveCode) }
        else { end(1, "Lost the connection to the node: \(Posix.errorText(error)).") }
    }

    // MARK: - Stdin

    private func readStdinNow(invalid: Bool) {
        let result = invalid ? .eof : Posix.read(STDIN_FILENO, max: 4096)
        switch result {
        case .data(let bytes):
            if interactive {
                let (output, events) = editor.feed(bytes)
                Posix.writeAll(STDOUT_FILENO, output)
                for event in events { handle(event) }
            } else {
                for item in stdinLines.feed(bytes) { handleInputLine(item) }
            }
        case .wouldBlock:
            break
        case .eof, .error:
            stdinOpen = false
            if interactive { leave(0); return }   // the terminal went away
            for item in stdinLines.finish() { handleInputLine(item) }
            if case .chatting = state { state = .inputEnded(quietSince: nil) }
        }
    }

    private func handle(_ event: LineEditor.Event) {
        guard case .chatting = state else { return }
        switch event {
        case .submit(let text) where text == "/exit": leave(0)
        case .submit(let text): outbox.enqueue(.message(Array(text.utf8)))
        case .quit: leave(0)
        }
    }

    private func handleInputLine(_ item: IncomingSplitter.Item) {
        guard case .chatting = state else { return }
        switch item {
        case .exit: leave(0)
        case .message(let line): outbox.enqueue(.message(line))
        }
    }

    // MARK: - Leaving

    private var isLeaving: Bool {
        switch state {
        case .leaving, .closing: return true
        default: return false
        }
    }

    /// Queues the goodbye behind what is already queued, so no typed message is lost.
    private func leave(_ code: Int32) {
        guard !isLeaving else { return }
        leaveCode = code
        outbox.enqueue(.goodbye)
        state = .leaving(deadline: Posix.nowMs() + Self.leaveMs)
    }

    private func handleSignal(_ sig: Int32) {
        switch sig {
        case SIGWINCH:
            guard interactive else { return }
            editor.columns = RawTerminal.columns()
            Posix.writeAll(STDOUT_FILENO, editor.render())
        default:
            // Ctrl+C is the ordinary way out: 0. SIGTERM/SIGHUP/SIGQUIT: the shell's 128+N.
            let code: Int32 = sig == SIGINT ? 0 : 128 + sig
            if isLeaving { end(code) } else { leave(code) }   // a second signal: leave now
        }
    }

    private func checkTimers(_ now: UInt64) {
        switch state {
        case .chatting:
            break
        case .inputEnded(let quietSince):
            guard outbox.isEmpty, unsent.isEmpty else { return }
            guard let since = quietSince else {
                state = .inputEnded(quietSince: now)
                lastBusyMs = max(lastBusyMs, now)
                return
            }
            if now >= lastBusyMs + Self.quietMs || now >= since + Self.lingerMs { leave(0) }
        case .leaving(let deadline), .closing(let deadline):
            if now >= deadline { end(leaveCode) }
        }
    }

    private func timeout(_ now: UInt64) -> Int {
        var due: [UInt64] = []
        // Queued items wait for their gap, or for nothing if queued since the last release.
        if unsent.isEmpty, !outbox.isEmpty { due.append(nextOutboxMs ?? now) }
        switch state {
        case .chatting: break
        case .inputEnded(let quietSince):
            // Before the outbox drained, the outbox's own time or POLLOUT wakes us.
            if let since = quietSince { due += [lastBusyMs + Self.quietMs, since + Self.lingerMs] }
        case .leaving(let deadline), .closing(let deadline):
            due.append(deadline)
        }
        guard let first = due.min() else { return -1 }
        return first > now ? Int(first - now) : 0
    }

    private func end(_ code: Int32, _ message: String? = nil) {
        if outcome == nil { outcome = Outcome(code: code, message: message) }
    }
}

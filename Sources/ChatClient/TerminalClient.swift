import ChatCore
import Glibc

/// `tcp_chat client`: connect, hand-shake, chat.
///
/// Exit codes: 0 when the user leaves (`/exit`, Ctrl+C, Ctrl+D, end of piped input) or the
/// node closes the session with `/exit`; 1 when the node refuses us (400/403), cannot be
/// reached, or drops the connection without `/exit` (a crash, a kick); 2 for invalid
/// arguments; 128+N when signal N (SIGTERM, SIGHUP, SIGQUIT) ends the session, and 130 for
/// Ctrl+C before the chat started.
public enum TerminalClient {
    public static func run(_ config: ClientConfiguration) -> Int32 {
        if let problem = config.problem() {
            printLine(problem, to: STDERR_FILENO)
            return 2
        }
        // A closed stdin/stdout/stderr would hand its number to the socket, and we would
        // print into the connection: park /dev/null there first.
        for std in [STDIN_FILENO, STDOUT_FILENO, STDERR_FILENO] where fcntl(std, F_GETFD) < 0 {
            _ = open("/dev/null", std == STDIN_FILENO ? O_RDONLY : O_WRONLY)
        }
        signal(SIGPIPE, SIG_IGN)   // a closed stdout or socket must be an error code, not death
        guard let signals = SignalPipe(signals: [SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGWINCH]) else {
            printLine("Cannot set up signal handling: \(Posix.errorText(errno)).", to: STDERR_FILENO)
            return 1
        }
        defer { signals.uninstall() }

        let fd: Int32
        switch Connector.connect(host: config.host, port: config.port, timeoutMs: config.connectTimeoutMs, signals: signals) {
        case .success(let s):
            fd = s
        case .failure(.failed(let reason)):
            printLine("Cannot connect to \(config.address): \(reason)", to: STDERR_FILENO)
            return 1
        case .failure(.interrupted(let sig)):
            return 128 + sig
        }
        defer { close(fd) }
        if config.tls || config.tlsCA != nil {
            switch TLSClient.handshake(fd: fd, host: config.host, caFile: config.tlsCA, timeoutMs: config.replyTimeoutMs, signals: signals) {
            case .success: break
            case .failure(.failed(let reason)):
                printLine("Cannot connect securely to \(config.address): \(reason).", to: STDERR_FILENO)
                return 1
            case .failure(.interrupted(let sig)):
                return 128 + sig
            }
        }
        defer { TLSClient.close(fd) }

        let reply: HandshakeReply
        switch HandshakeExchange.perform(fd: fd, handshake: config.handshake, timeoutMs: config.replyTimeoutMs, signals: signals) {
        case .success(let r):
            reply = r
        case .failure(.timedOut):
            printLine("No answer from \(config.address) to the handshake within \(config.replyTimeoutMs / 1000) s.", to: STDERR_FILENO)
            return 1
        case .failure(.closed):
            printLine("The node at \(config.address) closed the connection without answering the handshake.", to: STDERR_FILENO)
            return 1
        case .failure(.socketError(let e)):
            printLine("Lost the connection to \(config.address) during the handshake: \(Posix.errorText(e)).", to: STDERR_FILENO)
            return 1
        case .failure(.interrupted(let sig)):
            return 128 + sig
        }

        let framing: Framing
        let early: [UInt8]
        switch reply {
        case .accepted(let f, let rest):
            // Exactly `200` so far: the session has the framing we asked for; a line node's
            // `\n` may still be in flight, so the splitter drops one leading `\n`.
            framing = f ?? (config.lineFraming ? .line : .raw)
            early = rest
        case .nameTaken:
            printLine("The name \(config.username) is already connected.", to: STDERR_FILENO)
            return 1
        case .malformed:
            printLine("The node refused the handshake as malformed (400).", to: STDERR_FILENO)
            return 1
        case .unexpected(let bytes):
            let shown = Sanitizer.displayText(bytes.prefix(60))
            printLine("Unexpected answer to the handshake from \(config.address): \"\(shown)\".", to: STDERR_FILENO)
            return 1
        }

        printLine("Connected to \(config.address) as \(config.username) in room \(config.chatID). Type /exit to leave.",
                  to: STDOUT_FILENO)
        // The line editor needs both ends on a terminal; otherwise plain lines in and out.
        let terminal = isatty(STDIN_FILENO) == 1 && isatty(STDOUT_FILENO) == 1 ? RawTerminal() : nil
        let session = ChatSession(fd: fd, framing: framing, skipLeadingNewline: reply == .accepted(framing: nil, rest: []) && framing == .line,
                                  signals: signals, terminal: terminal)
        let outcome = session.run(early: early)
        if let message = outcome.message {
            printLine(message, to: outcome.code == 0 ? STDOUT_FILENO : STDERR_FILENO)
        }
        return outcome.code
    }

    static func printLine(_ text: String, to fd: Int32) {
        Posix.writeAll(fd, text + "\n")
    }
}

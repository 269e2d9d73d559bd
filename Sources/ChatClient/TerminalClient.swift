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

        // A line handshake first (unless --raw); on a server that is not a tcp_chat node,
        // the bare one (HandshakePlan).
        var attempt = HandshakePlan.first(config.mode)
        var nameRetryUntil: UInt64?
        var fd: Int32 = -1
        var framing = Framing.raw
        var early: [UInt8] = []
        attempts: while true {
            switch Connector.connect(host: config.host, port: config.port, timeoutMs: config.connectTimeoutMs, signals: signals) {
            case .success(let s):
                fd = s
            case .failure(.failed(let reason)):
                printLine("Cannot connect to \(config.address): \(reason)", to: STDERR_FILENO)
                return 1
            case .failure(.interrupted(let sig)):
                return 128 + sig
            }
            // --tls: the TLS handshake (chain and host name verified) before anything else;
            // from here on Posix.read/send go through the session.
            if config.tls || config.tlsCA != nil {
                switch TLSClient.handshake(fd: fd, host: config.host, caFile: config.tlsCA, timeoutMs: config.replyTimeoutMs, signals: signals) {
                case .success: break
                case .failure(.failed(let reason)):
                    close(fd)
                    printLine("Cannot connect securely to \(config.address): \(reason).", to: STDERR_FILENO)
                    return 1
                case .failure(.interrupted(let sig)):
                    close(fd)
                    return 128 + sig
                }
            }
            let thisAttempt = attempt
            let step: HandshakePlan.Step
            switch HandshakeExchange.perform(fd: fd, handshake: config.handshake(attempt), timeoutMs: config.replyTimeoutMs,
                                             graceMs: config.lineReplyGraceMs, signals: signals,
                                             decide: { HandshakePlan.step(mode: config.mode, attempt: thisAttempt, received: $0, graceOver: $1) }) {
            case .success(let s):
                step = s
            case .failure(let failure):
                TLSClient.close(fd)
                close(fd)
                switch failure {
                case .timedOut:
                    printLine("No answer from \(config.address) to the handshake within \(config.replyTimeoutMs / 1000) s.", to: STDERR_FILENO)
                case .closed:
                    printLine("The node at \(config.address) closed the connection without answering the handshake.", to: STDERR_FILENO)
                case .socketError(let e):
                    printLine("Lost the connection to \(config.address) during the handshake: \(Posix.errorText(e)).", to: STDERR_FILENO)
                case .interrupted(let sig):
                    return 128 + sig
                }
                return 1
            }

            switch step {
            case .chat(let f, let rest):
                framing = f
                early = rest
                break attempts
            case .wait:
                preconditionFailure("HandshakeExchange returns only decided steps")
            case .fallBack(let accepted):
                // Not a tcp_chat node (the original server): leave, then the bare handshake.
                TLSClient.close(fd)
                if let sig = HandshakeExchange.leave(fd: fd, timeoutMs: config.fallbackCloseMs, signals: signals) { return 128 + sig }
                attempt = .bare
                if accepted { nameRetryUntil = Posix.nowMs() + UInt64(config.nameRetryForMs) }
                continue attempts
            case .notLineNode(let bytes):
                TLSClient.close(fd)
                close(fd)
                let shown = Sanitizer.displayText(bytes.prefix(60))
                printLine("\(config.address) answered the line handshake with \"\(shown)\", not \"200\" and a newline: "
                          + "it is not a tcp_chat node (try without --line).", to: STDERR_FILENO)
                return 1
            case .refused(let reply):
                TLSClient.close(fd)
                close(fd)
                switch reply {
                case .nameTaken:
                    // Right after the fallback the original server may still hold the name
                    // our first connection had: ask again for a moment.
                    if let until = nameRetryUntil, Posix.nowMs() < until {
                        if let sig = HandshakeExchange.pause(ms: config.nameRetryEveryMs, signals: signals) { return 128 + sig }
                        continue attempts
                    }
                    printLine("The name \(config.username) is already connected.", to: STDERR_FILENO)
                case .malformed:
                    printLine("The node refused the handshake as malformed (400).", to: STDERR_FILENO)
                case .unexpected(let bytes):
                    let shown = Sanitizer.displayText(bytes.prefix(60))
                    printLine("Unexpected answer to the handshake from \(config.address): \"\(shown)\".", to: STDERR_FILENO)
                case .accepted:
                    printLine("Unexpected answer to the handshake from \(config.address).", to: STDERR_FILENO)
                }
                return 1
            }
        }
        defer { close(fd) }
        defer { TLSClient.close(fd) }

        printLine("Connected to \(config.address) as \(config.username) in room \(config.chatID). Type /exit to leave.",
                  to: STDOUT_FILENO)
        // The line editor needs both ends on a terminal; otherwise plain lines in and out.
        let terminal = isatty(STDIN_FILENO) == 1 && isatty(STDOUT_FILENO) == 1 ? RawTerminal() : nil
        let session = ChatSession(fd: fd, framing: framing, signals: signals, terminal: terminal)
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

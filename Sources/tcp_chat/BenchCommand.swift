import ArgumentParser
import ChatBench

#if canImport(Glibc)
import Glibc
#endif

/// `tcp_chat bench`: load a node or a cluster and measure it (ChatBench).
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Load a node or a cluster with chat traffic; report throughput, latency and what was lost.",
        discussion: """
            Logs --clients line sessions into --rooms rooms, spread round-robin over the --target nodes so every \
            room spans them; the first --senders members of each room send --size-byte messages, at --rate per \
            sender or flat-out (each sender keeps --window messages in flight). Every receiver checks each message \
            (framing, checksum, sender's name and room, per-sender order, duplicates) and, after --drain, counts \
            the measured messages it never got. Prints a progress line every second on stderr and a summary on \
            stdout (--json: one JSON object). Exit status: 0 when every check passed, 1 when something was lost, \
            duplicated, reordered, garbled or disconnected, 2 when the run could not start (connect or login failed). \
            Latency is receive time minus send time on this machine's monotonic clock (both ends are this process). \
            Run the node with --rate-limit 0 for flat-out load: its per-client rate limit slows senders otherwise.
            """
    )

    @Option(name: .customLong("target"), help: ArgumentHelp("A node to connect clients to; repeatable, clients round-robin (default: localhost:8888).", valueName: "HOST:PORT"))
    var targets: [String] = []
    @Option(name: .customLong("send-target"), help: ArgumentHelp("Put the senders on these nodes instead; repeatable.", valueName: "HOST:PORT"))
    var sendTargets: [String] = []
    @Option(help: "Client sessions in all.")
    var clients = 100
    @Option(help: "Rooms; client i joins room i mod ROOMS.")
    var rooms = 1
    @Option(help: "Senders per room (its first members).")
    var senders = 10
    @Option(help: ArgumentHelp("Bytes of each message's text (\(BenchPayload.minSize) or more).", valueName: "BYTES"))
    var size = 64
    @Option(help: ArgumentHelp("Messages per second per sender; 0 = flat-out.", valueName: "MSG/S"))
    var rate: Double = 0
    @Option(help: "Flat-out: messages in flight per sender (0 = as fast as TCP takes them).")
    var window = 32
    @Option(help: ArgumentHelp("Seconds measured.", valueName: "SECONDS"))
    var duration: Double = 10
    @Option(help: ArgumentHelp("Seconds of traffic before measuring.", valueName: "SECONDS"))
    var warmup: Double = 2
    @Option(help: ArgumentHelp("Seconds to wait after the measurement for messages in flight.", valueName: "SECONDS"))
    var drain: Double = 2
    @Option(help: ArgumentHelp("Seconds for every client to connect and log in.", valueName: "SECONDS"))
    var connectTimeout: Double = 10
    @Option(name: .customLong("conn-par"), help: "Connections opened and logging in at once.")
    var connectParallel = 100
    @Option(help: "Usernames are PREFIX0, PREFIX1, ….")
    var namePrefix = "bench"
    @Option(help: "Rooms are PREFIX0, PREFIX1, ….")
    var roomPrefix = "benchroom"
    @Flag(help: "Clients speak TLS; the node's certificate must verify (system trust store or --tls-ca) and name the target host.")
    var tls = false
    @Option(help: ArgumentHelp("CA certificates (PEM) the nodes' certificates chain to; implies --tls.", valueName: "FILE"))
    var tlsCa: String?
    @Flag(help: "Every client a WebSocket session (GET /ws, text frames) instead of a TCP line session.")
    var websocket = false
    @Flag(help: "Print one JSON object instead of the summary.")
    var json = false
    @Flag(help: "No progress line on stderr.")
    var noProgress = false

    var benchConfiguration: BenchConfiguration {
        var c = BenchConfiguration()
        if !targets.isEmpty { c.targets = targets }
        c.sendTargets = sendTargets
        c.clients = clients
        c.rooms = rooms
        c.senders = senders
        c.size = size
        c.rate = rate
        c.window = window
        c.duration = duration
        c.warmup = warmup
        c.drain = drain
        c.connectTimeout = connectTimeout
        c.connectParallel = connectParallel
        c.namePrefix = namePrefix
        c.roomPrefix = roomPrefix
        c.tls = tls || tlsCa != nil
        c.tlsCA = tlsCa
        c.webSocket = websocket
        return c
    }

    func validate() throws {
        let problems = benchConfiguration.problems()
        if !problems.isEmpty { throw ValidationError(problems.joined(separator: "\n")) }
    }

    func run() throws {
        let tty = isatty(STDERR_FILENO) == 1
        var printedProgress = false
        let progress: ((BenchProgress) -> Void)? = noProgress ? nil : { p in
            writeStderr(tty ? "\r\(p.line)\u{1B}[K" : "\(p.line)\n")
            printedProgress = true
        }
        let report: BenchReport
        do {
            report = try ChatBench.run(benchConfiguration, progress: progress)
        } catch {
            if tty && printedProgress { writeStderr("\n") }
            writeStderr("tcp_chat bench: \(error)\n")
            throw ExitCode(2)
        }
        if tty && printedProgress { writeStderr("\n") }
        if json {
            print(report.json)
            if !report.passed {
                writeStderr(report.failures.map { "tcp_chat bench: FAILED: \($0)\n" }.joined())
            }
        } else {
            print(report.text, terminator: "")
        }
        fflush(nil)
        if report.interrupted { throw ExitCode(130) }
        if !report.passed { throw ExitCode(1) }
    }
}

private func writeStderr(_ s: String) {
    var s = s
    s.withUTF8 { buf in
        var off = 0
        while off < buf.count {
            let n = write(STDERR_FILENO, buf.baseAddress! + off, buf.count - off)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return }
            off += n
        }
    }
}

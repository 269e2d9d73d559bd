#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// `tcp_chat bench`: a load tool for a node or a cluster (README "Measuring a node").
///
/// Clients log in as line sessions (`NAME_ROOM\n` → `200\n`), senders send payloads in the
/// C harness's format (`BenchPayload`), and every receiver checks what it gets: framing and
/// checksum, the relayed name, the room, per-sender order, duplicates, and at the end the
/// measured messages it never got. Latency is receive time − send time on this machine's
/// monotonic clock: the tool sends and receives itself, so the figure is end to end and
/// needs no clock synchronisation as long as one bench process does both.
public enum ChatBench {
    /// Runs one measurement. Throws when it cannot start: bad settings, a target that does
    /// not answer, a login refused, or clients not logged in within the connect timeout.
    /// Everything after the logins (loss, duplicates, disconnects, an interrupt) is in the report.
    public static func run(_ config: BenchConfiguration,
                           progress: ((BenchProgress) -> Void)? = nil) throws(BenchSetupError) -> BenchReport {
        let problems = config.problems()
        guard problems.isEmpty else { throw BenchSetupError(problems.joined(separator: "; ")) }
        _ = signal(SIGPIPE, SIG_IGN)
        let limit = BenchSockets.raiseDescriptorLimit()
        if UInt64(config.clients) + 16 > limit {
            throw BenchSetupError("\(config.clients) clients need \(config.clients + 16) file descriptors; the limit is \(limit) (raise it with `ulimit -n`)")
        }
        let probeNs = UInt64(config.connectTimeout * 1e9)
        var targets: [ResolvedTarget] = []
        for t in config.targets { targets.append(try BenchSockets.reachable(HostPort.parse(t)!, timeoutNs: probeNs)) }
        var sendTargets: [ResolvedTarget] = []
        for t in config.sendTargets { sendTargets.append(try BenchSockets.reachable(HostPort.parse(t)!, timeoutNs: probeNs)) }

        benchStopRequested = 0
        let onStop: @convention(c) (Int32) -> Void = { _ in benchStopRequested = 1 }
        let oldInt = signal(SIGINT, onStop)
        let oldTerm = signal(SIGTERM, onStop)
        defer {
            signal(SIGINT, oldInt)
            signal(SIGTERM, oldTerm)
        }

        let tls = config.tls ? try BenchTLS(caFile: config.tlsCA) : nil
        var engine = LoadEngine(config: config, targets: targets, sendTargets: sendTargets, tls: tls)
        defer { engine.release() }
        engine.run(progress: progress)
        if let why = engine.setupFailure, !engine.interrupted { throw BenchSetupError(why) }
        return engine.report(targetTexts: targets.map(\.text), sendTargetTexts: sendTargets.map(\.text))
    }
}

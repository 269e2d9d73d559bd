import Histogram

/// Latency percentiles in microseconds, from an HdrHistogram of nanoseconds.
public struct LatencySummary: Equatable, Sendable {
    public var p50: Double = 0
    public var p90: Double = 0
    public var p99: Double = 0
    public var p999: Double = 0
    public var max: Double = 0
    public var n: UInt64 = 0

    public init() {}

    public init(nanoseconds h: Histogram<UInt64>) {
        n = h.totalCount
        guard n > 0 else { return }
        p50 = Double(h.valueAtPercentile(50)) / 1000
        p90 = Double(h.valueAtPercentile(90)) / 1000
        p99 = Double(h.valueAtPercentile(99)) / 1000
        p999 = Double(h.valueAtPercentile(99.9)) / 1000
        max = Double(h.maxRecorded) / 1000
    }

    /// The histogram the load engine keeps: nanoseconds up to an hour, 3 significant digits.
    static func histogram(significantDigits: SignificantDigits = .three) -> Histogram<UInt64> {
        Histogram(highestTrackableValue: 3_600_000_000_000, numberOfSignificantValueDigits: significantDigits)
    }

    /// The summary of these latencies, through the same histogram as a run.
    public static func of(nanoseconds values: [UInt64]) -> LatencySummary {
        var h = histogram()
        for v in values { h.record(v) }
        return LatencySummary(nanoseconds: h)
    }
}

/// Connections that went wrong, by cause (the C loadgen's `error_detail`).
public struct ErrorCounts: Equatable, Sendable {
    /// Could not connect.
    public var connect: UInt64 = 0
    /// The node closed the connection.
    public var eof: UInt64 = 0
    /// The connection was reset.
    public var reset: UInt64 = 0
    /// The node said something that is not the protocol (a bad handshake reply, a line too long).
    public var proto: UInt64 = 0
    /// Login refused (400 or 403).
    public var refused: UInt64 = 0
    /// Not logged in within --connect-timeout.
    public var timeout: UInt64 = 0
    /// A write failed.
    public var write: UInt64 = 0

    public init() {}

    public var total: UInt64 { connect + eof + reset + proto + refused + timeout + write }
}

/// The outcome of one run: the figures and the checks, as text or JSON.
public struct BenchReport: Equatable, Sendable {
    public var targets: [String] = []
    public var sendTargets: [String] = []
    public var clients = 0
    /// Clients logged in when the traffic started.
    public var ready = 0
    public var rooms = 0
    /// Senders in all, every room together.
    public var senders = 0
    public var size = 0
    public var ratePerSender: Double = 0
    /// Flat-out window (0 when a rate is set).
    public var window = 0
    /// The measured window as it ran, seconds.
    public var durationSeconds: Double = 0

    /// Measured messages sent.
    public var sent: UInt64 = 0
    /// Deliveries received during the measured window (warmup messages still arriving included).
    public var deliveredInWindow: UInt64 = 0
    /// Deliveries owed: every measured message to every receiver of its room logged in at the start.
    public var expected: UInt64 = 0
    /// Distinct measured messages received by those receivers.
    public var delivered: UInt64 = 0
    public var lost: UInt64 = 0
    public var lostTail: UInt64 = 0
    public var duplicated: UInt64 = 0
    public var reordered: UInt64 = 0
    /// Lines that are not a relayed payload of ours, or whose payload is damaged.
    public var garbled: UInt64 = 0
    /// A message from a sender of another room.
    public var misrouted: UInt64 = 0
    /// A relayed line that names someone else than the payload's sender.
    public var badName: UInt64 = 0
    /// `* ` notices from the node.
    public var notices: UInt64 = 0
    /// Flat-out senders whose window had not moved for 1 s and was reset (only happens with loss).
    public var windowStalls: UInt64 = 0
    /// Fixed rate: how late the scheduler ran at worst, microseconds.
    public var schedLagMaxUs: Double = 0
    public var latency = LatencySummary()
    /// From the start until every client was logged in, milliseconds.
    public var connectMs: Double = 0
    /// The clients spoke TLS (`--tls`): `connectMs` includes every TLS handshake.
    public var tls = false
    /// Clients connected and logged in per second during the connect phase (with `tls`,
    /// TCP + TLS handshake + login each).
    public var loginsPerSecond: Double { connectMs > 0 ? Double(ready) / (connectMs / 1000) : 0 }
    public var errors = ErrorCounts()
    /// This process's CPU time over the measured window, as a fraction of one core.
    public var loadgenCPUUtil: Double = 0
    public var wallSeconds: Double = 0
    public var interrupted = false
    public var deadlineReached = false

    public init() {}

    public var sentPerSecond: Double { durationSeconds > 0 ? Double(sent) / durationSeconds : 0 }
    public var deliveredPerSecond: Double { durationSeconds > 0 ? Double(deliveredInWindow) / durationSeconds : 0 }

    /// What went wrong, one sentence each; empty when every check passed.
    public var failures: [String] {
        var out: [String] = []
        let cutShort = interrupted || deadlineReached
        if interrupted { out.append("interrupted before the end: the figures are partial, and messages still in flight are not counted as lost") }
        if deadlineReached { out.append("stopped at the hard deadline (warmup + duration + drain + connect timeout + 10 s)") }
        if expected > 0 && delivered == 0 { out.append("no measured message was delivered") }
        if expected == 0 && !cutShort { out.append("nothing was measured: no message was sent in the measured window") }
        if lost > 0 && !interrupted {
            out.append("\(lost) of \(expected) expected deliveries were lost (\(lostTail) of them after the last that arrived: raise --drain if that is most)")
        }
        if duplicated > 0 { out.append("\(duplicated) deliveries were duplicates") }
        if reordered > 0 { out.append("\(reordered) deliveries arrived out of their sender's order") }
        if garbled > 0 { out.append("\(garbled) lines received were garbled (not a relayed message of this run, or damaged)") }
        if misrouted > 0 { out.append("\(misrouted) messages reached a member of another room") }
        if badName > 0 { out.append("\(badName) messages were relayed under another name than their sender's") }
        if errors.total > 0 {
            out.append("\(errors.total) connection errors (" + errorDetail.filter { $0.1 > 0 }.map { "\($0.0) \($0.1)" }.joined(separator: ", ") + ")")
        }
        return out
    }

    /// Worth knowing, not a failure.
    public var warnings: [String] {
        var out: [String] = []
        if loadgenCPUUtil > 0.9 {
            out.append("the load tool itself used \(Fmt.fixed(loadgenCPUUtil * 100, 0)) % of a core: the node may be faster than these figures (spread the load over several bench processes)")
        }
        if notices > 0 { out.append("the node sent \(notices) `* ` notices (rate limit? run the node with --rate-limit 0 for flat-out load)") }
        if windowStalls > 0 { out.append("\(windowStalls) flat-out windows stalled for 1 s and were reset") }
        if ratePerSender > 0 && schedLagMaxUs > 10_000 {
            out.append("the send scheduler ran up to \(Fmt.fixed(schedLagMaxUs / 1000, 1)) ms late: the tool could not keep the rate")
        }
        return out
    }

    public var passed: Bool { failures.isEmpty }

    var errorDetail: [(String, UInt64)] {
        [("connect", errors.connect), ("eof", errors.eof), ("reset", errors.reset), ("proto", errors.proto),
         ("refused", errors.refused), ("timeout", errors.timeout), ("write", errors.write)]
    }

    /// One JSON object, fields named as the C loadgen names them.
    public var json: String {
        var j = JSONWriter()
        j.field("tool", string: "tcp_chat bench")
        j.field("proto", string: "tcpchat")
        j.field("mode", string: "relay")
        j.field("targets", strings: targets)
        j.field("send_targets", strings: sendTargets)
        j.field("clients", clients)
        j.field("ready", ready)
        j.field("rooms", rooms)
        j.field("senders", senders)
        j.field("size", size)
        j.field("rate_per_sender", number: ratePerSender, digits: 3)
        j.field("window", window)
        j.field("duration_s", number: durationSeconds, digits: 3)
        j.field("sent", sent)
        j.field("sent_per_s", number: sentPerSecond, digits: 1)
        j.field("delivered_per_s", number: deliveredPerSecond, digits: 1)
        j.field("expected", expected)
        j.field("delivered", delivered)
        j.field("lost", lost)
        j.field("lost_tail", lostTail)
        j.field("duplicated", duplicated)
        j.field("reordered", reordered)
        j.field("garbled", garbled)
        j.field("misrouted", misrouted)
        j.field("bad_name", badName)
        j.field("notices", notices)
        j.field("window_stalls", windowStalls)
        j.field("sched_lag_max_us", number: schedLagMaxUs, digits: 0)
        j.raw("lat_us", "{\"p50\":\(Fmt.fixed(latency.p50, 1)),\"p90\":\(Fmt.fixed(latency.p90, 1)),\"p99\":\(Fmt.fixed(latency.p99, 1)),\"p999\":\(Fmt.fixed(latency.p999, 1)),\"max\":\(Fmt.fixed(latency.max, 1)),\"n\":\(latency.n)}")
        j.field("connect_ms", number: connectMs, digits: 1)
        j.raw("tls", tls ? "true" : "false")
        j.field("logins_per_s", number: loginsPerSecond, digits: 1)
        j.field("errors", errors.total)
        j.raw("error_detail", "{" + errorDetail.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}")
        j.field("loadgen_cpu_util", number: loadgenCPUUtil, digits: 3)
        j.field("wall_s", number: wallSeconds, digits: 2)
        j.raw("interrupted", interrupted ? "true" : "false")
        j.raw("deadline_reached", deadlineReached ? "true" : "false")
        j.raw("ok", passed ? "true" : "false")
        j.field("failures", strings: failures)
        j.field("warnings", strings: warnings)
        return j.finish()
    }

    /// The human summary.
    public var text: String {
        var out = ""
        let load = ratePerSender > 0
            ? "\(Fmt.number(ratePerSender)) msg/s per sender"
            : (window > 0 ? "flat-out, \(window) in flight per sender" : "flat-out, unbounded")
        out += "tcp_chat bench: \(clients) clients (\(ready) logged in) in \(rooms) room\(rooms == 1 ? "" : "s"), \(senders) sender\(senders == 1 ? "" : "s"), \(size)-byte messages, \(load)\n"
        out += "targets: \(targets.joined(separator: " "))"
        if !sendTargets.isEmpty { out += "; senders on: \(sendTargets.joined(separator: " "))" }
        out += "\n"
        out += "measured \(Fmt.fixed(durationSeconds, 2)) s, logged in after \(Fmt.fixed(connectMs, 0)) ms"
            + " (\(Fmt.si(loginsPerSecond)) logins/s\(tls ? " over TLS" : ""))\n"
        out += "throughput: \(Fmt.si(sentPerSecond)) msg/s sent, \(Fmt.si(deliveredPerSecond)) deliveries/s\n"
        if latency.n > 0 {
            out += "latency: p50 \(Fmt.ms(latency.p50)) ms, p90 \(Fmt.ms(latency.p90)) ms, p99 \(Fmt.ms(latency.p99)) ms, p99.9 \(Fmt.ms(latency.p999)) ms, max \(Fmt.ms(latency.max)) ms (\(latency.n) deliveries)\n"
        } else {
            out += "latency: no measured delivery\n"
        }
        out += "checks: \(delivered) of \(expected) expected deliveries; lost \(lost), duplicated \(duplicated), reordered \(reordered), garbled \(garbled), misrouted \(misrouted), bad name \(badName), connection errors \(errors.total)\n"
        for w in warnings { out += "note: \(w)\n" }
        if passed {
            out += "OK: every measured message reached every member of its room exactly once, in order\n"
        } else {
            for f in failures { out += "FAILED: \(f)\n" }
        }
        return out
    }
}

/// A flat JSON object built field by field (no Foundation in this module).
struct JSONWriter {
    private var body = ""

    mutating func raw(_ key: String, _ value: String) {
        if !body.isEmpty { body += "," }
        body += "\"\(key)\":\(value)"
    }
    mutating func field<I: BinaryInteger>(_ key: String, _ v: I) { raw(key, "\(v)") }
    mutating func field(_ key: String, number: Double, digits: Int) { raw(key, Fmt.fixed(number, digits)) }
    mutating func field(_ key: String, string: String) { raw(key, JSONWriter.quote(string)) }
    mutating func field(_ key: String, strings: [String]) { raw(key, "[" + strings.map(JSONWriter.quote).joined(separator: ",") + "]") }
    func finish() -> String { "{" + body + "}" }

    static func quote(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if u.value < 0x20 {
                    let h = String(u.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - h.count) + h
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        return out + "\""
    }
}

/// Number formatting without Foundation.
public enum Fmt {
    /// `x` with `digits` decimals (non-finite numbers as 0).
    public static func fixed(_ x: Double, _ digits: Int) -> String {
        guard x.isFinite else { return "0" }
        var scale = 1.0
        for _ in 0..<digits { scale *= 10 }
        let negative = x < 0
        let scaled = (abs(x) * scale).rounded()
        guard scaled < 9e18 else { return String(x) }
        let n = UInt64(scaled)
        let whole = n / UInt64(scale)
        var s = (negative && n > 0 ? "-" : "") + String(whole)
        if digits > 0 {
            let frac = String(n % UInt64(scale))
            s += "." + String(repeating: "0", count: digits - frac.count) + frac
        }
        return s
    }

    /// 3 significant figures with k/M/G: `86.1k`, `8.61M`, `950`.
    public static func si(_ x: Double) -> String {
        let a = abs(x)
        let (v, suffix): (Double, String) = a >= 1e9 ? (x / 1e9, "G") : a >= 1e6 ? (x / 1e6, "M") : a >= 1e3 ? (x / 1e3, "k") : (x, "")
        let av = abs(v)
        let digits = suffix.isEmpty ? 0 : (av >= 100 ? 0 : av >= 10 ? 1 : 2)
        return fixed(v, digits) + suffix
    }

    /// Microseconds as milliseconds with a precision that suits the size.
    public static func ms(_ us: Double) -> String {
        let m = us / 1000
        return fixed(m, m >= 100 ? 0 : m >= 10 ? 1 : m >= 1 ? 2 : 3)
    }

    /// A rate as typed: `5`, `2.5`.
    public static func number(_ x: Double) -> String {
        x == x.rounded() && abs(x) < 1e15 ? String(Int64(x)) : fixed(x, 3)
    }
}

// Micro-benchmarks of the node's hot paths in ChatCore (no I/O): framing, validation,
// encoding, a room's fan-out, the peer codec and the username registry.
// Run from Benchmarks/: `swift package benchmark` (README.md has the threshold workflow).
import Benchmark
import ChatCore

/// Tolerances for `thresholds check` / `baseline check`: the static check compares each
/// metric's p90 with the stored one. Time is noisy on a shared VM (±10–30 % between runs),
/// so time and throughput may move 35 % either way before a check fails; allocation counts
/// are exact, so one more allocation per operation than recorded fails the check.
func tolerances(mallocSlack: Int = 0) -> [BenchmarkMetric: BenchmarkThresholds] {
    [
        .wallClock: .init(relative: [.p90: 35.0]),
        .throughput: .init(relative: [.p90: 35.0]),
        .mallocCountTotal: .init(absolute: [.p90: mallocSlack]),
    ]
}

let metrics: [BenchmarkMetric] = [.wallClock, .throughput, .mallocCountTotal]

func config(_ scaling: BenchmarkScalingFactor = .one, mallocSlack: Int = 0) -> Benchmark.Configuration {
    .init(metrics: metrics, timeUnits: .nanoseconds, scalingFactor: scaling, maxDuration: .seconds(2),
          maxIterations: 1_000_000, thresholds: tolerances(mallocSlack: mallocSlack))
}

/// A line of `count` bytes of UTF-8 text: mixed scripts, never split inside a character.
func utf8Text(bytes count: Int) -> [UInt8] {
    let pieces = ["Grüße ", "aus ", "Zürich — ", "日本語 ", "テキスト ", "✓ ", "ok ", "Ωμέγα ", "naïve ", "café "]
    var out: [UInt8] = []
    var i = 0
    while true {
        let p = Array(pieces[i % pieces.count].utf8)
        if out.count + p.count > count { break }
        out += p
        i += 1
    }
    while out.count < count { out.append(UInt8(ascii: ".")) }
    return out
}

/// A session's sink that only counts what it is given (the fan-out without a socket).
final class CountingSink: SessionSink {
    var bytes = 0
    func enqueue(_ payload: Payload, length: Int) { bytes &+= length }
    func loginFinished(_ session: Session?) {}
    func endSession() {}
}

/// A sink with a real `Outbox`, as the node's connections have: the fan-out appends to it.
final class OutboxSink: SessionSink {
    let box = Outbox()
    var outbox: Outbox? { box }
    func enqueue(_ payload: Payload, length: Int) { box.append(payload, length: length) }
    func loginFinished(_ session: Session?) {}
    func endSession() {}

    func drain() {
        while let (p, n) = box.popFirst() {
            blackHole(n)
            p.dropQueueRef()
        }
    }
}

/// A hub with one room of `members` sessions; returns the first member (the sender).
func roomOf<S: SessionSink>(_ members: Int, hub: Hub, sinks: [S]) -> Session {
    var first: Session?
    for i in 0..<members {
        let name = ChatName("member\(i)", maxLength: Limits.maxUsernameLength)!
        let room = ChatName("general", maxLength: Limits.maxChatIDLength)!
        guard case .accepted(let s) = hub.login(username: name, chatID: room, framing: .line, sink: sinks[i]) else {
            fatalError("login of member\(i) was not accepted")
        }
        if first == nil { first = s }
    }
    return first!
}

// Names carry no space or `/`: the threshold files are named after them, and the tool writes
// those characters as `_` but looks the files up by the name as it is.
let benchmarks: @Sendable () -> Void = {
    // MARK: Framing

    // 64 KiB of 64-byte lines (63 bytes of text and `\n`): 1024 messages per iteration.
    let line = Array(repeating: UInt8(ascii: "m"), count: 63) + [0x0A]
    let chunk = Array((0..<1024).map { _ in line }.joined())
    var framer = MessageFramer(maxBytes: 4096)
    Benchmark("MessageFramer.64KiB-of-64B-lines", configuration: config(mallocSlack: 1)) { benchmark in
        for _ in benchmark.scaledIterations {
            chunk.withUnsafeBytes { framer.append($0) }
            var n = 0
            while let frame = framer.next() {
                if case .message(let m) = frame { n &+= m.count }
            }
            blackHole(n)
        }
    }

    // MARK: Validation

    let text64 = utf8Text(bytes: 64)
    let text4k = utf8Text(bytes: 4096)
    precondition(TextCheck.problem(in: text64) == nil && TextCheck.problem(in: text4k) == nil)
    Benchmark("TextCheck.64B-UTF8", configuration: config(.kilo)) { benchmark in
        text64.withUnsafeBytes { raw in
            for _ in benchmark.scaledIterations { blackHole(TextCheck.problem(in: raw)) }
        }
    }
    Benchmark("TextCheck.4KiB-UTF8", configuration: config()) { benchmark in
        text4k.withUnsafeBytes { raw in
            for _ in benchmark.scaledIterations { blackHole(TextCheck.problem(in: raw)) }
        }
    }

    // MARK: Encoding

    let prefix = Array("alice - ".utf8)
    Benchmark("Payload.line.64B", configuration: config(.kilo, mallocSlack: 10)) { benchmark in
        text64.withUnsafeBytes { raw in
            for _ in benchmark.scaledIterations { blackHole(Payload.line(prefix: prefix, text: raw)) }
        }
    }

    // MARK: Fan-out

    let countingHub = Hub(limits: Limits())
    let countingSinks = (0..<100).map { _ in CountingSink() }
    let countingSender = roomOf(100, hub: countingHub, sinks: countingSinks)
    text64.withUnsafeBytes { _ = countingHub.say($0, from: countingSender) }
    precondition(countingHub.stats.deliveries == 100 && countingSinks.allSatisfy { $0.bytes > 4 + 64 },
                 "the fan-out reached \(countingHub.stats.deliveries) members")
    Benchmark("Hub.fanOut.64B-to-100-members.countingSink", configuration: config(mallocSlack: 1)) { benchmark in
        text64.withUnsafeBytes { raw in
            for _ in benchmark.scaledIterations { blackHole(countingHub.say(raw, from: countingSender)) }
        }
        blackHole(countingSinks[99].bytes)  // the sessions' sinks are unowned: keep them alive
    }

    let outboxHub = Hub(limits: Limits())
    let outboxSinks = (0..<100).map { _ in OutboxSink() }
    let outboxSender = roomOf(100, hub: outboxHub, sinks: outboxSinks)
    for s in outboxSinks { s.drain() }
    text64.withUnsafeBytes { _ = outboxHub.say($0, from: outboxSender) }
    precondition(outboxHub.stats.deliveries == 100 && outboxSinks.allSatisfy { $0.box.bytes > 64 },
                 "the fan-out reached \(outboxHub.stats.deliveries) members")
    for s in outboxSinks { s.drain() }
    Benchmark("Hub.fanOut.64B-to-100-members.outbox", configuration: config(mallocSlack: 1)) { benchmark in
        text64.withUnsafeBytes { raw in
            for _ in benchmark.scaledIterations {
                blackHole(outboxHub.say(raw, from: outboxSender))
                for s in outboxSinks { s.drain() }
            }
        }
    }

    // MARK: Peer codec

    let origin = NodeID("0123456789abcdef")!
    let chat = PeerMessage.chat(Flood(origin: origin, seq: 123_456), room: "general", user: "Alice",
                                text: String(decoding: text64, as: UTF8.self))
    let chatLine = chat.encoded
    precondition((try? PeerMessage.decode(chatLine)) == chat)
    Benchmark("PeerMessage.decode.MSG-64B", configuration: config(mallocSlack: 1)) { benchmark in
        for _ in benchmark.scaledIterations { blackHole(try? PeerMessage.decode(chatLine)) }
    }
    Benchmark("PeerMessage.encoded.MSG-64B", configuration: config(mallocSlack: 1)) { benchmark in
        for _ in benchmark.scaledIterations { blackHole(chat.encoded) }
    }

    // MARK: Claim registry

    let me = NodeID("00000000000000aa")!
    let other = NodeID("00000000000000bb")!
    let claimant = NodeID("00000000000000cc")!
    for names in [10, 15_000] {
        var registry = ClaimRegistry(me: me)
        for i in 0..<names { _ = registry.answer(NameClaim(name: "user\(i)", ts: UInt64(i) + 1), from: other) }
        let claim = NameClaim(name: "newcomer", ts: 1 << 40)
        Benchmark("ClaimRegistry.answer+release.\(names)-names", configuration: config(mallocSlack: 1)) { benchmark in
            for _ in benchmark.scaledIterations {
                blackHole(registry.answer(claim, from: claimant))
                registry.release(claim, holder: claimant)
            }
        }
    }
}

import COpenSSL
import Histogram
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Set by SIGINT/SIGTERM while a run is going: the loop stops at its next turn and reports.
nonisolated(unsafe) var benchStopRequested: Int32 = 0

/// The load generator: one thread, non-blocking sockets, poll(2), the C loadgen's design.
///
/// Every client is a slot in one flat array; the receive path reads up to 256 KiB per
/// socket per loop turn into one shared buffer, cuts lines with `memchr`, and checks each
/// relayed line in place (no allocation per message). Only a partial line at the end of a
/// read is copied aside, into the client's carry buffer. Senders append to their own
/// output buffer and are flushed once per turn.
///
/// A struct driven by `mutating` methods on a local variable, so that Swift needs no
/// dynamic exclusivity checks on the hot path; memory is released by `release()`.
struct LoadEngine {
    enum State: UInt8 { case idle, connecting, tls, upgrading, handshake, ready, dead }
    enum Phase: Equatable { case connect, warmup, measure, drain, done }

    struct Slot {
        var fd: Int32 = -1
        var room: Int32 = 0
        var member: Int32 = 0
        var target: Int32 = 0
        var state: State = .idle
        var isSender = false
        var counted = false
        var dirty = false
        var woken = false
        var seq: UInt32 = 0
        var measFirst: UInt32 = 0
        var measCount: UInt32 = 0
        /// Deliveries owed for this sender's messages (flat-out window).
        var outstanding: Int64 = 0
        /// Receivers of each of its messages (its room's members, itself included).
        var fanout: Int64 = 0
        var lastProgress: UInt64 = 0
        var tStart: UInt64 = 0
        var carry: UnsafeMutablePointer<UInt8>? = nil
        var carryLen = 0
        var carryCap = 0
        var out: UnsafeMutablePointer<UInt8>? = nil
        var outOff = 0
        var outLen = 0
        var outCap = 0
    }

    static let readBufferBytes = 256 * 1024
    static let nameStride = 32

    // Settings.
    let size: Int
    let window: Int64
    let rate: Double
    let nClients: Int
    let nRooms: Int
    /// Senders per room (members 0..<K of each room).
    let perRoom: Int
    let warmupNs: UInt64, durationNs: UInt64, drainNs: UInt64, connectTimeoutNs: UInt64, hardDeadlineNs: UInt64
    let connectParallel: Int
    let targets: [ResolvedTarget]
    let sendTargets: [ResolvedTarget]
    let namePrefix: String
    let roomPrefix: String
    let maxCarry: Int
    /// `--tls`: every client's session (nil for plaintext runs), by client index.
    let tls: BenchTLS?
    let ssls: UnsafeMutablePointer<OpaquePointer?>
    /// WebSocket clients: an HTTP upgrade, then masked frames out and frames in.
    let webSocket: Bool

    // Memory, allocated once.
    let slots: UnsafeMutablePointer<Slot>
    let pfds: UnsafeMutablePointer<pollfd>
    /// Receiver `r`'s tracker of the sender with member index `m` in its room: `pairs[r * perRoom + m]`.
    let pairs: UnsafeMutablePointer<PairTracker>
    let names: UnsafeMutablePointer<UInt8>
    let nameLens: UnsafeMutablePointer<Int>
    let senderIDs: UnsafeMutablePointer<Int32>
    let nSenders: Int
    let rbuf: UnsafeMutableRawPointer
    let dirtyList: UnsafeMutablePointer<Int32>
    var nDirty = 0
    let wokenList: UnsafeMutablePointer<Int32>
    var nWoken = 0

    // Phases.
    var phase = Phase.connect
    var t0: UInt64 = 0
    var phaseEnd: UInt64 = 0
    var measStart: UInt64 = 0
    var measEnd: UInt64 = 0
    var connectDone: UInt64 = 0
    var nextConnect = 0
    var inflight = 0
    var nReady = 0
    var setupFailure: String?
    var interrupted = false
    var deadlineReached = false
    var lastStallCheck: UInt64 = 0

    // Fixed rate.
    var rateNext: UInt64 = 0
    var rateInterval: UInt64 = 1
    var rateIndex = 0
    var schedLagMax: UInt64 = 0

    // Figures.
    var sentWindow: UInt64 = 0
    var deliveredWindow: UInt64 = 0
    var deliveredUnique: UInt64 = 0
    var expected: UInt64 = 0
    var duplicated: UInt64 = 0
    var reordered: UInt64 = 0
    var garbled: UInt64 = 0
    var misrouted: UInt64 = 0
    var badName: UInt64 = 0
    var notices: UInt64 = 0
    var stalls: UInt64 = 0
    var errors = ErrorCounts()
    var latency: Histogram<UInt64>
    var cpuAtMeasStart = 0.0
    var cpuAtMeasEnd = 0.0

    // Progress.
    var progressNext: UInt64 = 0
    var progressLast: UInt64 = 0
    var intervalSent: UInt64 = 0
    var intervalDelivered: UInt64 = 0
    var intervalLatency: Histogram<UInt64>

    init(config c: BenchConfiguration, targets: [ResolvedTarget], sendTargets: [ResolvedTarget], tls: BenchTLS? = nil) {
        self.tls = tls
        ssls = .allocate(capacity: c.clients)
        ssls.initialize(repeating: nil, count: c.clients)
        size = c.size
        window = Int64(c.window)
        rate = c.rate
        nClients = c.clients
        nRooms = c.rooms
        perRoom = c.sendersPerRoom
        warmupNs = UInt64(c.warmup * 1e9)
        durationNs = UInt64(c.duration * 1e9)
        drainNs = UInt64(c.drain * 1e9)
        connectTimeoutNs = UInt64(c.connectTimeout * 1e9)
        hardDeadlineNs = UInt64(c.hardDeadlineSeconds * 1e9)
        connectParallel = c.connectParallel
        self.targets = targets
        self.sendTargets = sendTargets
        namePrefix = c.namePrefix
        roomPrefix = c.roomPrefix
        maxCarry = 16 * 1024 + c.size
        webSocket = c.webSocket

        slots = .allocate(capacity: nClients)
        slots.initialize(repeating: Slot(), count: nClients)
        pfds = .allocate(capacity: nClients)
        pfds.initialize(repeating: pollfd(fd: -1, events: 0, revents: 0), count: nClients)
        pairs = .allocate(capacity: max(nClients * perRoom, 1))
        pairs.initialize(repeating: PairTracker(), count: max(nClients * perRoom, 1))
        names = .allocate(capacity: nClients * LoadEngine.nameStride)
        nameLens = .allocate(capacity: nClients)
        senderIDs = .allocate(capacity: nClients)
        rbuf = .allocate(byteCount: LoadEngine.readBufferBytes + 64, alignment: 64)
        dirtyList = .allocate(capacity: nClients)
        wokenList = .allocate(capacity: nClients)

        var ns = 0
        for i in 0..<nClients {
            let member = i / nRooms
            slots[i].room = Int32(i % nRooms)
            slots[i].member = Int32(member)
            slots[i].isSender = member < perRoom
            // Round-robin over the targets by member index, so every room spans them.
            slots[i].target = Int32(member)
            if slots[i].isSender { senderIDs[ns] = Int32(i); ns += 1 }
            let name = Array((namePrefix + String(i)).utf8)
            precondition(name.count <= LoadEngine.nameStride)
            for (k, b) in name.enumerated() { names[i * LoadEngine.nameStride + k] = b }
            nameLens[i] = name.count
        }
        nSenders = ns
        // Nanoseconds up to an hour, 3 significant digits.
        latency = LatencySummary.histogram()
        intervalLatency = LatencySummary.histogram(significantDigits: .two)
    }

    /// Closes every socket and frees the memory.
    mutating func release() {
        for i in 0..<nClients {
            if let ssl = ssls[i] { SSL_free(ssl) }
            if slots[i].fd >= 0 { close(slots[i].fd) }
            slots[i].carry?.deallocate()
            slots[i].out?.deallocate()
        }
        ssls.deallocate()
        tls?.release()
        slots.deinitialize(count: nClients)
        slots.deallocate()
        pfds.deallocate()
        pairs.deallocate()
        names.deallocate()
        nameLens.deallocate()
        senderIDs.deallocate()
        rbuf.deallocate()
        dirtyList.deallocate()
        wokenList.deallocate()
    }

    // MARK: The loop

    mutating func run(progress: ((BenchProgress) -> Void)?) {
        t0 = BenchSockets.nowNs()
        progressLast = t0
        progressNext = t0 + 1_000_000_000
        let hardDeadline = t0 + hardDeadlineNs
        while phase != .done {
            var now = BenchSockets.nowNs()
            if benchStopRequested != 0 { interrupted = true; break }
            if now > hardDeadline { deadlineReached = true; break }
            var timeoutMs: Int32 = 20
            if nWoken > 0 {
                timeoutMs = 0
            } else if rate > 0 && (phase == .warmup || phase == .measure) {
                let d = Int64(bitPattern: rateNext &- now)
                timeoutMs = d <= 0 ? 0 : Int32(min((d + 999_999) / 1_000_000, 20))
            }
            let n = poll(pfds, nfds_t(nClients), timeoutMs)
            if n > 0 {
                var left = Int(n)
                var i = 0
                while i < nClients && left > 0 {
                    let rev = pfds[i].revents
                    if rev != 0 {
                        left -= 1
                        handleEvents(i, Int32(rev))
                    }
                    i += 1
                }
            }
            now = BenchSockets.nowNs()
            tick(now)
            runSenders(now)
            flushDirty()
            if now >= progressNext {
                if let progress { progress(snapshot(now)) }
                progressLast = now
                progressNext += 1_000_000_000
                if progressNext <= now { progressNext = now + 1_000_000_000 }
                intervalSent = 0
                intervalDelivered = 0
                intervalLatency.reset()
            }
        }
        let end = BenchSockets.nowNs()
        if phase == .measure {
            // Stopped early inside the measured window: account for what was sent so far.
            endMeasurement(end)
        }
    }

    func snapshot(_ now: UInt64) -> BenchProgress {
        let dt = Double(now - progressLast) / 1e9
        let p: BenchProgress.Phase
        switch phase {
        case .connect: p = .connect
        case .warmup: p = .warmup
        case .measure: p = .measure
        case .drain, .done: p = .drain
        }
        return BenchProgress(
            elapsedSeconds: Int((Double(now - t0) / 1e9).rounded()), phase: p, ready: nReady, clients: nClients,
            sentPerSecond: dt > 0 ? Double(intervalSent) / dt : 0,
            deliveredPerSecond: dt > 0 ? Double(intervalDelivered) / dt : 0,
            p99Us: intervalLatency.totalCount > 0 ? Double(intervalLatency.valueAtPercentile(99)) / 1000 : nil,
            duplicated: duplicated, reordered: reordered, garbled: garbled + misrouted + badName, errors: errors.total)
    }

    // MARK: Connections

    mutating func startConnect(_ i: Int) {
        let s = slots + i
        let t: ResolvedTarget
        if s.pointee.isSender && !sendTargets.isEmpty {
            t = sendTargets[Int(s.pointee.target) % sendTargets.count]
        } else {
            t = targets[Int(s.pointee.target) % targets.count]
        }
        s.pointee.tStart = BenchSockets.nowNs()
        s.pointee.state = .connecting
        inflight += 1
        let fd = BenchSockets.openSocket(family: t.family)
        guard fd >= 0 else { failClient(i, cause: .connect, why: "cannot open a socket: \(BenchSockets.errnoText())"); return }
        s.pointee.fd = fd
        pfds[i] = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
        var storage = t.storage
        let rc = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, t.length) }
        }
        if rc != 0 && errno != EINPROGRESS {
            failClient(i, cause: .connect, why: "\(name(i)) cannot connect to \(t.text): \(BenchSockets.errnoText())")
        }
    }

    func name(_ i: Int) -> String {
        String(decoding: UnsafeBufferPointer(start: names + i * LoadEngine.nameStride, count: nameLens[i]), as: UTF8.self)
    }

    func targetText(_ i: Int) -> String {
        let s = slots[i]
        if s.isSender && !sendTargets.isEmpty { return sendTargets[Int(s.target) % sendTargets.count].text }
        return targets[Int(s.target) % targets.count].text
    }

    enum Cause { case connect, eof, reset, proto, refused, timeout, write }

    mutating func failClient(_ i: Int, cause: Cause, why: String? = nil) {
        let s = slots + i
        let wasConnecting = s.pointee.state == .connecting || s.pointee.state == .tls || s.pointee.state == .upgrading
            || s.pointee.state == .handshake
        if let ssl = ssls[i] { SSL_free(ssl); ssls[i] = nil }
        if s.pointee.fd >= 0 { close(s.pointee.fd) }
        s.pointee.fd = -1
        pfds[i].fd = -1
        pfds[i].events = 0
        s.pointee.state = .dead
        s.pointee.carryLen = 0
        s.pointee.outOff = 0
        s.pointee.outLen = 0
        switch cause {
        case .connect: errors.connect += 1
        case .eof: errors.eof += 1
        case .reset: errors.reset += 1
        case .proto: errors.proto += 1
        case .refused: errors.refused += 1
        case .timeout: errors.timeout += 1
        case .write: errors.write += 1
        }
        if wasConnecting {
            inflight -= 1
            if phase == .connect && setupFailure == nil {
                setupFailure = why ?? "\(name(i)) lost its connection to \(targetText(i)) while logging in"
            }
        }
    }

    mutating func handleEvents(_ i: Int, _ rev: Int32) {
        let s = slots + i
        guard s.pointee.fd >= 0 else { return }
        if s.pointee.state == .connecting {
            guard rev & Int32(POLLOUT | POLLERR | POLLHUP) != 0 else { return }
            var err: Int32 = 0
            var len = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(s.pointee.fd, SOL_SOCKET, SO_ERROR, &err, &len)
            if err != 0 {
                failClient(i, cause: .connect, why: "\(name(i)) cannot connect to \(targetText(i)): \(BenchSockets.errnoText(err))")
                return
            }
            if let tls {
                let host = HostPort.parse(targetText(i))?.host ?? ""
                guard let ssl = tls.session(fd: s.pointee.fd, host: host) else {
                    failClient(i, cause: .connect, why: "cannot set up TLS")
                    return
                }
                ssls[i] = ssl
                s.pointee.state = .tls
                tlsStep(i)
                return
            }
            sendHandshake(i)
            return
        }
        if s.pointee.state == .tls {
            tlsStep(i)
            return
        }
        if rev & Int32(POLLIN | POLLHUP | POLLERR) != 0 {
            onReadable(i)
            if s.pointee.fd < 0 { return }
        }
        if rev & Int32(POLLOUT) != 0 {
            if s.pointee.outLen > s.pointee.outOff { markDirty(i) }
            if rate == 0 && window == 0 && s.pointee.isSender { wake(i) }
        }
    }

    /// Drives a client's TLS handshake; once done, sends its chat handshake.
    mutating func tlsStep(_ i: Int) {
        switch BenchTLS.handshake(ssls[i]!) {
        case .done: sendHandshake(i)
        case .wantRead: pfds[i].events = Int16(POLLIN)
        case .wantWrite: pfds[i].events = Int16(POLLOUT)
        case .failed(let why): failClient(i, cause: .connect, why: "\(name(i)) cannot connect securely to \(targetText(i)): \(why)")
        }
    }

    /// The chat handshake once connected (and, with `--tls`, once TLS is up): a line
    /// handshake, or for WebSocket clients the HTTP upgrade first.
    mutating func sendHandshake(_ i: Int) {
        let s = slots + i
        if webSocket {
            let t = targetText(i)
            let req = Array(("GET /ws HTTP/1.1\r\nHost: \(t)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").utf8)
            s.pointee.state = .upgrading
            req.withUnsafeBufferPointer { appendOut(i, $0.baseAddress!, $0.count) }
        } else {
            let hs = Array("\(name(i))_\(roomPrefix)\(s.pointee.room)\n".utf8)
            s.pointee.state = .handshake
            hs.withUnsafeBufferPointer { appendOut(i, $0.baseAddress!, $0.count) }
        }
        pfds[i].events = Int16(POLLIN)
        flush(i)
    }

    // MARK: Receiving

    mutating func onReadable(_ i: Int) {
        let s = slots + i
        let carry = s.pointee.carryLen
        if carry > 0 { rbuf.copyMemory(from: s.pointee.carry!, byteCount: carry) }
        let n = ssls[i].map { BenchTLS.read($0, rbuf + carry, LoadEngine.readBufferBytes - carry) }
            ?? read(s.pointee.fd, rbuf + carry, LoadEngine.readBufferBytes - carry)
        if n == 0 { failClient(i, cause: .eof); return }
        if n < 0 {
            let e = errno
            if e == EAGAIN || e == EWOULDBLOCK || e == EINTR { return }
            failClient(i, cause: e == ECONNRESET ? .reset : .eof,
                       why: "\(name(i)) lost its connection to \(targetText(i)): \(BenchSockets.errnoText(e))")
            return
        }
        let now = BenchSockets.nowNs()
        let total = carry + n
        let used = parse(i, total, now)
        if used < 0 || s.pointee.fd < 0 { return }
        let rest = total - used
        if rest > maxCarry {
            failClient(i, cause: .proto, why: "\(targetText(i)) sent \(name(i)) a line longer than \(maxCarry) bytes")
            return
        }
        if rest > 0 {
            if rest > s.pointee.carryCap {
                var cap = max(s.pointee.carryCap, 256)
                while cap < rest { cap *= 2 }
                s.pointee.carry?.deallocate()
                s.pointee.carry = .allocate(capacity: cap)
                s.pointee.carryCap = cap
            }
            s.pointee.carry!.update(from: (rbuf + used).assumingMemoryBound(to: UInt8.self), count: rest)
        }
        s.pointee.carryLen = rest
        // TLS: a record's plaintext may still be inside OpenSSL, where poll(2) cannot see it.
        if let ssl = ssls[i], BenchTLS.pending(ssl) > 0 { onReadable(i) }
    }

    /// Cuts `rbuf[0..<len]` into lines; returns the bytes consumed, or -1 if the client was closed.
    mutating func parse(_ i: Int, _ len: Int, _ now: UInt64) -> Int {
        if webSocket { return parseFrames(i, len, now) }
        var pos = 0
        while pos < len {
            guard let nl = memchr(rbuf + pos, 0x0A, len - pos) else { return pos }
            let e = UnsafeMutableRawPointer(nl) - rbuf
            var l = e - pos
            if l > 0 && rbuf.load(fromByteOffset: e - 1, as: UInt8.self) == 0x0D { l -= 1 }
            if !handleLine(i, UnsafeRawPointer(rbuf + pos), l, now) { return -1 }
            pos = e + 1
        }
        return pos
    }

    /// WebSocket: the `101` head, then server frames (unmasked, never fragmented by a node);
    /// each text frame's payload is handled as a line. Returns the bytes consumed, or -1.
    mutating func parseFrames(_ i: Int, _ len: Int, _ now: UInt64) -> Int {
        var pos = 0
        let b = rbuf.assumingMemoryBound(to: UInt8.self)
        if slots[i].state == .upgrading {
            var end = -1
            var k = 3
            while k < len {
                if b[k] == 0x0A && b[k - 1] == 0x0D && b[k - 2] == 0x0A && b[k - 3] == 0x0D { end = k + 1; break }
                k += 1
            }
            if end < 0 { return 0 }
            let head = String(decoding: UnsafeBufferPointer(start: b, count: min(end, 80)), as: UTF8.self)
            guard head.hasPrefix("HTTP/1.1 101 ") else {
                failClient(i, cause: .refused, why: "\(targetText(i)) refused the WebSocket upgrade: \(head.split(separator: "\r\n").first ?? "")")
                return -1
            }
            slots[i].state = .handshake
            let hs = Array("\(name(i))_\(roomPrefix)\(slots[i].room)".utf8)
            hs.withUnsafeBufferPointer { appendMaskedText(i, UnsafeRawBufferPointer($0)) }
            pos = end
        }
        while len - pos >= 2 {
            let op = b[pos] & 0x0F
            var n = Int(b[pos + 1] & 0x7F)
            var hl = 2
            if n == 126 {
                guard len - pos >= 4 else { return pos }
                n = Int(b[pos + 2]) << 8 | Int(b[pos + 3])
                hl = 4
            } else if n == 127 {
                guard len - pos >= 10 else { return pos }
                n = 0
                for k in 2..<10 { n = n << 8 | Int(b[pos + k]) }
                hl = 10
            }
            guard len - pos >= hl + n else { return pos }
            if op == 1 {
                if !handleLine(i, UnsafeRawPointer(b + pos + hl), n, now) { return -1 }
            }
            // A close frame: the node's EOF follows.
            pos += hl + n
        }
        return pos
    }

    /// A masked text frame with an all-zero mask key (the payload goes as it is: a load
    /// tool need not hide its bytes from proxies; the node unmasks all the same).
    mutating func appendMaskedText(_ i: Int, _ text: UnsafeRawBufferPointer) {
        let n = text.count
        let hl = n < 126 ? 6 : 8
        let w = reserveOut(i, hl + n)
        writeFrameHeader(w, n)
        if n > 0 { (w + hl).update(from: text.baseAddress!.assumingMemoryBound(to: UInt8.self), count: n) }
        slots[i].outLen += hl + n
        markDirty(i)
    }

    /// A masked text frame header for `n` < 65536 payload bytes, mask key 0; returns its length.
    @inline(__always)
    @discardableResult
    func writeFrameHeader(_ w: UnsafeMutablePointer<UInt8>, _ n: Int) -> Int {
        w[0] = 0x81
        if n < 126 {
            w[1] = 0x80 | UInt8(n)
            w[2] = 0; w[3] = 0; w[4] = 0; w[5] = 0
            return 6
        }
        w[1] = 0x80 | 126
        w[2] = UInt8(n >> 8); w[3] = UInt8(n & 0xFF)
        w[4] = 0; w[5] = 0; w[6] = 0; w[7] = 0
        return 8
    }

    /// One line without its line ending; false if the client was closed.
    @inline(__always)
    mutating func handleLine(_ i: Int, _ p: UnsafeRawPointer, _ len: Int, _ now: UInt64) -> Bool {
        let s = slots + i
        if s.pointee.state == .handshake {
            if len == 3 {
                let a = p.load(as: UInt8.self), b = p.load(fromByteOffset: 1, as: UInt8.self), c = p.load(fromByteOffset: 2, as: UInt8.self)
                if a == 0x32 && b == 0x30 && c == 0x30 { becameReady(i, now); return true }
                if a == 0x34 && b == 0x30 && (c == 0x30 || c == 0x33) {
                    let why = c == 0x33
                        ? "403: the name is already connected (another bench still running, or a real user? try --name-prefix)"
                        : "400: the node found the handshake malformed"
                    failClient(i, cause: .refused, why: "\(targetText(i)) refused the login of \(name(i)) into \(roomPrefix)\(s.pointee.room) with \(why)")
                    return false
                }
            }
            let text = String(decoding: UnsafeRawBufferPointer(start: p, count: min(len, 80)), as: UTF8.self)
            failClient(i, cause: .proto, why: "\(targetText(i)) answered the login of \(name(i)) with \"\(text)\" instead of 200")
            return false
        }
        if len >= 2 && p.load(as: UInt8.self) == 0x2A && p.load(fromByteOffset: 1, as: UInt8.self) == 0x20 {
            notices += 1  // `* ` notice
            return true
        }
        if len == 5 && p.load(as: UInt8.self) == 0x2F { return true }  // `/exit`: the node stops; its EOF follows
        guard len >= size + 3 else { garbled += 1; return true }
        let nameLen = len - size - 3
        guard p.load(fromByteOffset: nameLen, as: UInt8.self) == 0x20, p.load(fromByteOffset: nameLen + 1, as: UInt8.self) == 0x2D,
              p.load(fromByteOffset: nameLen + 2, as: UInt8.self) == 0x20 else { garbled += 1; return true }
        deliver(i, p + nameLen + 3, p, nameLen, now)
        return true
    }

    @inline(__always)
    mutating func deliver(_ r: Int, _ payload: UnsafeRawPointer, _ who: UnsafeRawPointer, _ whoLen: Int, _ now: UInt64) {
        guard let f = BenchPayload.decode(payload, size: size), Int(f.sender) < nClients else { garbled += 1; return }
        let sid = Int(f.sender)
        let s = slots + sid
        let rcv = slots + r
        guard s.pointee.isSender else { garbled += 1; return }
        guard s.pointee.room == rcv.pointee.room else { misrouted += 1; return }
        if whoLen != nameLens[sid] || memcmp(who, names + sid * LoadEngine.nameStride, whoLen) != 0 { badName += 1 }
        let lat = now > f.sendTimeNs ? now - f.sendTimeNs : 0
        intervalDelivered &+= 1
        intervalLatency.record(lat)
        if phase == .measure { deliveredWindow &+= 1 }
        s.pointee.outstanding -= 1
        s.pointee.lastProgress = now
        if rate == 0 && !s.pointee.woken
            && (window == 0 || s.pointee.outstanding + s.pointee.fanout <= window * s.pointee.fanout) {
            wake(sid)
        }
        guard f.measured, rcv.pointee.counted else { return }
        guard f.sequence >= s.pointee.measFirst else { garbled += 1; return }
        let rel = f.sequence - s.pointee.measFirst
        switch pairs[r * perRoom + Int(s.pointee.member)].record(rel) {
        case .duplicate: duplicated += 1; return
        case .late: reordered += 1
        case .inOrder: break
        }
        deliveredUnique &+= 1
        latency.record(lat)
    }

    mutating func becameReady(_ i: Int, _ now: UInt64) {
        slots[i].state = .ready
        inflight -= 1
        nReady += 1
    }

    // MARK: Sending

    mutating func appendOut(_ i: Int, _ bytes: UnsafePointer<UInt8>, _ n: Int) {
        let w = reserveOut(i, n)
        w.update(from: bytes, count: n)
        slots[i].outLen += n
        markDirty(i)
    }

    /// Room for `n` more bytes at the end of the client's output; returns where to write.
    @inline(__always)
    mutating func reserveOut(_ i: Int, _ n: Int) -> UnsafeMutablePointer<UInt8> {
        let s = slots + i
        if s.pointee.outOff > 0 && s.pointee.outOff == s.pointee.outLen { s.pointee.outOff = 0; s.pointee.outLen = 0 }
        if s.pointee.outLen + n > s.pointee.outCap {
            if s.pointee.outOff > 0 {
                let live = s.pointee.outLen - s.pointee.outOff
                if live > 0 { s.pointee.out!.update(from: s.pointee.out! + s.pointee.outOff, count: live) }
                s.pointee.outLen = live
                s.pointee.outOff = 0
            }
            if s.pointee.outLen + n > s.pointee.outCap {
                var cap = max(s.pointee.outCap, 512)
                while cap < s.pointee.outLen + n { cap *= 2 }
                let fresh = UnsafeMutablePointer<UInt8>.allocate(capacity: cap)
                if let old = s.pointee.out {
                    fresh.update(from: old, count: s.pointee.outLen)
                    old.deallocate()
                }
                s.pointee.out = fresh
                s.pointee.outCap = cap
            }
        }
        return s.pointee.out! + s.pointee.outLen
    }

    @inline(__always)
    mutating func markDirty(_ i: Int) {
        if !slots[i].dirty { slots[i].dirty = true; dirtyList[nDirty] = Int32(i); nDirty += 1 }
    }

    @inline(__always)
    mutating func wake(_ i: Int) {
        if !slots[i].woken { slots[i].woken = true; wokenList[nWoken] = Int32(i); nWoken += 1 }
    }

    mutating func sendMessage(_ i: Int, stamp: UInt64) {
        let measured = phase == .measure
        let framing = webSocket ? (size < 126 ? 6 : 8) : 1
        var w = reserveOut(i, size + framing)
        let s = slots + i
        if webSocket { w += writeFrameHeader(w, size) }
        BenchPayload.encode(into: UnsafeMutableRawPointer(w), size: size,
                            fields: .init(sendTimeNs: stamp, sender: UInt32(i), sequence: s.pointee.seq, measured: measured))
        if !webSocket { w[size] = 0x0A }
        s.pointee.outLen += size + framing
        markDirty(i)
        s.pointee.seq &+= 1
        if measured { s.pointee.measCount += 1; sentWindow += 1 }
        intervalSent += 1
        s.pointee.outstanding += s.pointee.fanout
        if s.pointee.outstanding == s.pointee.fanout { s.pointee.lastProgress = stamp }
    }

    mutating func runSenders(_ now: UInt64) {
        guard phase == .warmup || phase == .measure else {
            for k in 0..<nWoken { slots[Int(wokenList[k])].woken = false }
            nWoken = 0
            return
        }
        if rate > 0 {
            var guardCount = 0
            while rateNext <= now && guardCount < 100_000 && nSenders > 0 {
                let i = Int(senderIDs[rateIndex])
                if slots[i].state == .ready { sendMessage(i, stamp: rateNext) }
                let lag = now - rateNext
                if lag > schedLagMax { schedLagMax = lag }
                rateNext += rateInterval
                rateIndex += 1
                if rateIndex == nSenders { rateIndex = 0 }
                guardCount += 1
            }
            return
        }
        let n = nWoken
        nWoken = 0
        for k in 0..<n {
            let i = Int(wokenList[k])
            let s = slots + i
            s.pointee.woken = false
            guard s.pointee.state == .ready else { continue }
            var count = 0
            if window == 0 {
                while s.pointee.outLen - s.pointee.outOff < 64 * 1024 && count < 1024 { sendMessage(i, stamp: now); count += 1 }
            } else {
                let win = window * max(s.pointee.fanout, 1)
                while s.pointee.outstanding + s.pointee.fanout <= win && count < Int(window) { sendMessage(i, stamp: now); count += 1 }
            }
        }
    }

    mutating func flushDirty() {
        for k in 0..<nDirty {
            let i = Int(dirtyList[k])
            slots[i].dirty = false
            flush(i)
        }
        nDirty = 0
    }

    mutating func flush(_ i: Int) {
        let s = slots + i
        while s.pointee.fd >= 0 && s.pointee.outLen > s.pointee.outOff {
            let n = ssls[i].map { BenchTLS.write($0, s.pointee.out! + s.pointee.outOff, s.pointee.outLen - s.pointee.outOff) }
                ?? write(s.pointee.fd, s.pointee.out! + s.pointee.outOff, s.pointee.outLen - s.pointee.outOff)
            if n > 0 { s.pointee.outOff += n; continue }
            let e = errno
            if n < 0 && e == EINTR { continue }
            if n < 0 && (e == EAGAIN || e == EWOULDBLOCK) { break }
            failClient(i, cause: .write, why: "\(name(i)) could not write to \(targetText(i)): \(BenchSockets.errnoText(e))")
            return
        }
        guard s.pointee.fd >= 0 else { return }
        if s.pointee.outOff == s.pointee.outLen { s.pointee.outOff = 0; s.pointee.outLen = 0 }
        let wantOut = s.pointee.outLen > s.pointee.outOff || (rate == 0 && window == 0 && s.pointee.isSender && s.pointee.state == .ready)
        if s.pointee.state != .connecting {
            pfds[i].events = Int16(POLLIN) | (wantOut ? Int16(POLLOUT) : 0)
        }
    }

    // MARK: Phases

    mutating func tick(_ now: UInt64) {
        switch phase {
        case .connect:
            if setupFailure != nil { phase = .done; return }
            while nextConnect < nClients && inflight < connectParallel {
                startConnect(nextConnect)
                nextConnect += 1
                if setupFailure != nil { phase = .done; return }
            }
            if nReady == nClients {
                connectDone = now
                beginTraffic(now)
            } else if now - t0 > connectTimeoutNs {
                let stuck = nClients - nReady
                errors.timeout += UInt64(stuck)
                setupFailure = "only \(nReady) of \(nClients) clients logged in within \(Fmt.number(Double(connectTimeoutNs) / 1e9)) s (--connect-timeout)"
                phase = .done
            }
        case .warmup:
            if now >= phaseEnd {
                phase = .measure
                measStart = now
                phaseEnd = now + durationNs
                for k in 0..<nSenders {
                    let i = Int(senderIDs[k])
                    slots[i].measFirst = slots[i].seq
                    slots[i].measCount = 0
                }
                cpuAtMeasStart = BenchSockets.cpuSeconds()
            }
        case .measure:
            if now >= phaseEnd {
                endMeasurement(now)
                phase = .drain
                phaseEnd = now + drainNs
            }
        case .drain:
            if now >= phaseEnd || deliveredUnique >= expected { phase = .done }
        case .done:
            break
        }
        // Flat-out stall guard: a sender whose window has not moved for 1 s (loss) is reset.
        if rate == 0 && window > 0 && (phase == .warmup || phase == .measure) && now - lastStallCheck > 100_000_000 {
            lastStallCheck = now
            for k in 0..<nSenders {
                let i = Int(senderIDs[k])
                let s = slots + i
                if s.pointee.state == .ready && s.pointee.outstanding > 0 && now > s.pointee.lastProgress
                    && now - s.pointee.lastProgress > 1_000_000_000 {
                    s.pointee.outstanding = 0
                    s.pointee.lastProgress = now
                    stalls += 1
                    wake(i)
                }
            }
        }
    }

    mutating func beginTraffic(_ now: UInt64) {
        var roomSize = [Int64](repeating: 0, count: nRooms)
        for i in 0..<nClients where slots[i].state == .ready { roomSize[Int(slots[i].room)] += 1 }
        for i in 0..<nClients {
            slots[i].counted = slots[i].state == .ready
            if slots[i].isSender {
                slots[i].fanout = roomSize[Int(slots[i].room)]
                slots[i].lastProgress = now
            }
        }
        phase = .warmup
        phaseEnd = now + warmupNs
        if rate > 0 && nSenders > 0 {
            rateInterval = max(UInt64(1e9 / (rate * Double(nSenders))), 1)
            rateNext = now
            rateIndex = 0
        } else {
            for k in 0..<nSenders { wake(Int(senderIDs[k])) }
        }
        // A warmup of 0 goes straight to the measurement.
        if warmupNs == 0 { tick(now) }
    }

    mutating func endMeasurement(_ now: UInt64) {
        measEnd = now
        cpuAtMeasEnd = BenchSockets.cpuSeconds()
        // Owed: every measured message of every sender of the room, to each receiver logged in at the start.
        var perRoomSent = [UInt64](repeating: 0, count: nRooms)
        for k in 0..<nSenders {
            let i = Int(senderIDs[k])
            perRoomSent[Int(slots[i].room)] += UInt64(slots[i].measCount)
        }
        expected = 0
        for r in 0..<nClients where slots[r].counted { expected += perRoomSent[Int(slots[r].room)] }
    }

    // MARK: The report

    func report(targetTexts: [String], sendTargetTexts: [String]) -> BenchReport {
        var rep = BenchReport()
        rep.targets = targetTexts
        rep.sendTargets = sendTargetTexts
        rep.clients = nClients
        rep.ready = nReady
        rep.rooms = nRooms
        rep.senders = nSenders
        rep.size = size
        rep.ratePerSender = rate
        rep.window = rate > 0 ? 0 : Int(window)
        rep.durationSeconds = measEnd > measStart ? Double(measEnd - measStart) / 1e9 : 0
        rep.sent = sentWindow
        rep.deliveredInWindow = deliveredWindow
        rep.expected = expected
        rep.delivered = deliveredUnique
        var lost: UInt64 = 0, lostTail: UInt64 = 0
        if measStart > 0 {
            for r in 0..<nClients where slots[r].counted {
                let room = Int(slots[r].room)
                for m in 0..<perRoom {
                    let sid = m * nRooms + room
                    guard sid < nClients, slots[sid].isSender else { continue }
                    let p = pairs[r * perRoom + m]
                    lost += p.lost(of: slots[sid].measCount)
                    lostTail += p.lostTail(of: slots[sid].measCount)
                }
            }
        }
        rep.lost = lost
        rep.lostTail = lostTail
        rep.duplicated = duplicated
        rep.reordered = reordered
        rep.garbled = garbled
        rep.misrouted = misrouted
        rep.badName = badName
        rep.notices = notices
        rep.windowStalls = stalls
        rep.schedLagMaxUs = Double(schedLagMax) / 1000
        rep.latency = LatencySummary(nanoseconds: latency)
        rep.connectMs = connectDone > t0 ? Double(connectDone - t0) / 1e6 : 0
        rep.errors = errors
        if rep.durationSeconds > 0 { rep.loadgenCPUUtil = (cpuAtMeasEnd - cpuAtMeasStart) / rep.durationSeconds }
        rep.wallSeconds = Double(BenchSockets.nowNs() - t0) / 1e9
        rep.interrupted = interrupted
        rep.tls = tls != nil
        rep.deadlineReached = deadlineReached
        return rep
    }
}

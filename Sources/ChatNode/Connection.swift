import CUV
import COpenSSL
import ChatCore

/// What a connection's bytes mean: the client protocol (`ClientHandler`) or a peer link
/// (`PeerLink`). A connection starts with one and may switch once, when an incoming
/// connection's first line turns out to be a peer's HELLO. Called on the loop thread only.
protocol ConnectionHandler: AnyObject {
    func didRead(_ bytes: UnsafeRawBufferPointer)
    /// The connection's timer fired.
    func timerFired()
    /// An outgoing connection is up (status 0) or failed.
    func didConnect(_ status: Int32)
    /// Once, as the connection closes, before its handles are gone.
    func willClose()
    /// Once, after both handles have closed.
    func didClose()
    /// The TLS layer under the connection failed (a bad handshake, an unverified peer
    /// certificate, a corrupt record): log it; the connection sends any alert and closes.
    func tlsFailed(_ reason: String)
    /// The TLS handshake under the connection completed (before any plaintext is delivered
    /// or sent); `Connection.channelBinding` is available from here on.
    func tlsEstablished()
}

extension ConnectionHandler {
    func tlsFailed(_ reason: String) {}
    func tlsEstablished() {}
}

/// One TCP connection on the loop: its socket, its timer, and its outgoing queue.
/// The handler decides what the bytes mean.
///
/// Lifetime: each of the two handles holds one retain of the connection, given in
/// `init` and taken back in its `close_cb`; `close()` closes both exactly once.
/// Output is queued and written once per loop turn as one `uv_write` of many buffers;
/// each payload stays alive in its `WriteBatch` until libuv's write callback.
/// Called on the node's loop thread only.
final class Connection {
    let loop: EventLoop
    let tcp: UnsafeMutablePointer<uv_tcp_t>
    private let timer: UnsafeMutablePointer<uv_timer_t>
    /// Requests only some connections need, allocated on first use: an idle session costs
    /// no more memory than it must (15,000 sessions on one node, docs/performance.md).
    private var shutdownReq: UnsafeMutablePointer<uv_shutdown_t>?
    private var connectReq: UnsafeMutablePointer<uv_connect_t>?
    /// Strong until the connection has closed (then released, breaking the cycle).
    var handler: (any ConnectionHandler)?

    /// Outgoing bytes not yet handed to libuv: (payload, how many of its bytes).
    let outbox = Outbox()
    /// Writes handed to libuv whose callback has not come yet.
    private var inflightWrites = 0
    /// Past this many queued bytes the connection is dropped (a reader that stopped reading).
    var maxQueueBytes: Int

    enum State { case open, draining, lingering, closed }
    private(set) var state = State.open
    private var openHandles = 0
    private(set) var reading = false
    /// TLS under this connection (docs/tls.md), nil for plaintext. Handlers never see it:
    /// reads are decrypted before `didRead`, the outbox is encrypted at flush time.
    private(set) var tls: TLSSession?
    /// Set on an accepted connection of a node with TLS: its first byte decides (0x16, a
    /// TLS handshake record, never starts a client handshake).
    var sniffTLS: TLSContexts?
    /// Plaintext reads take the first branch only: no TLS work unless TLS is on.
    private var layered = false
    /// Why the connection is going, for the disconnect log line.
    private(set) var closeReason = ""
    /// Set when a fan-out asked for a close that must wait for the end of the turn.
    private var closeRequested = false

    init(loop: EventLoop, maxQueueBytes: Int) {
        self.loop = loop
        self.maxQueueBytes = maxQueueBytes
        tcp = .allocate(capacity: 1)
        timer = .allocate(capacity: 1)
        uv_tcp_init(loop.raw, tcp)
        uv_timer_init(loop.raw, timer)
        tcp.pointee.data = Unmanaged.passRetained(self).toOpaque()
        timer.pointee.data = Unmanaged.passRetained(self).toOpaque()
        openHandles = 2
        outbox.onSchedule = { [unowned(unsafe) self] in self.loop.schedule(self) }
    }

    /// Takes a pending connection from `server`. On failure the connection is closed.
    func accept(from server: UnsafeMutablePointer<uv_tcp_t>) -> Bool {
        let rc = uv_accept(cuv_stream(server), cuv_stream(tcp))
        if rc != 0 {
            close(reason: "accept failed: \(uvError(rc))")
            return false
        }
        uv_tcp_nodelay(tcp, 1)
        return true
    }

    /// Accepted connections of a node with TLS: decide by the first byte read.
    func detectTLS(_ contexts: TLSContexts) {
        sniffTLS = contexts
        layered = true
    }

    /// A dialed connection speaks TLS from its first byte (as a client).
    func useTLS(_ session: TLSSession) {
        tls = session
        layered = true
    }

    /// Dials `address` (a sockaddr's bytes); the handler's `didConnect` tells the outcome.
    func connect(to address: [UInt8]) {
        let req = connectReq ?? .allocate(capacity: 1)
        connectReq = req
        req.pointee.data = Unmanaged.passUnretained(self).toOpaque()
        let rc = address.withUnsafeBytes {
            uv_tcp_connect(req, tcp, $0.baseAddress!.assumingMemoryBound(to: sockaddr.self), onConnect)
        }
        if rc != 0 { handler?.didConnect(rc) }
    }

    fileprivate func connected(_ status: Int32) {
        guard state == .open else { return }
        if status == 0 { uv_tcp_nodelay(tcp, 1) }
        handler?.didConnect(status)
        // A TLS dialer speaks first: its ClientHello goes out this turn.
        if status == 0, let tls, state == .open {
            _ = tls.read(UnsafeRawBufferPointer(start: nil, count: 0), scratch: loop.plainBuffer,
                         scratchSize: Tunables.tlsPlainBufferBytes) { _ in true }
            scheduleFlush()
        }
    }

    deinit {
        connectReq?.deallocate()
        shutdownReq?.deallocate()
    }

    /// The peer's address as text, for logs.
    func peerAddress() -> String {
        var storage = sockaddr_storage()
        var len = Int32(MemoryLayout<sockaddr_storage>.size)
        let ok = withUnsafeMutablePointer(to: &storage) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { uv_tcp_getpeername(tcp, $0, &len) }
        }
        guard ok == 0 else { return "?" }
        return withUnsafePointer(to: &storage) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { formatAddress($0) }
        }
    }

    // MARK: Reading

    func startReading() {
        guard !reading, state == .open || state == .lingering else { return }
        if uv_read_start(cuv_stream(tcp), onAlloc, onRead) == 0 { reading = true }
    }

    func stopReading() {
        guard reading else { return }
        uv_read_stop(cuv_stream(tcp))
        reading = false
    }

    private func didReachEOF(_ status: Int32) {
        if let tls, !tls.established, state == .open {
            // A TLS handshake cut short: a plaintext node answering our ClientHello, or a
            // client giving up on our certificate. Say so (peer links log it as a refusal).
            handler?.tlsFailed(status == UV_EOF.rawValue
                ? "connection closed during the TLS handshake (does the other end speak TLS?)"
                : "read error during the TLS handshake: \(uvError(status))")
        }
        close(reason: status == UV_EOF.rawValue ? "closed by peer" : "read error: \(uvError(status))")
    }

    fileprivate func handleRead(_ nread: Int) {
        loop.assertOnLoop()
        if nread > 0 {
            if state == .lingering { return }  // discarded: the connection is on its way out
            loop.stats.bytesIn += nread
            if layered { return secureRead(UnsafeRawBufferPointer(start: loop.readBuffer, count: nread)) }
            handler?.didRead(UnsafeRawBufferPointer(start: loop.readBuffer, count: nread))
        } else if nread < 0 {
            if state == .lingering { close(); return }
            didReachEOF(Int32(nread))
        }
        // nread == 0 is EAGAIN, not EOF.
    }

    /// The TLS side of a read: detection on the first byte, then decryption into the loop's
    /// plaintext buffer, chunk by chunk, to the handler (whichever it is by then).
    private func secureRead(_ bytes: UnsafeRawBufferPointer) {
        if let contexts = sniffTLS {
            sniffTLS = nil
            guard bytes[0] == 0x16, let session = TLSSession(context: contexts.server, accepting: true) else {
                layered = false
                handler?.didRead(bytes)
                return
            }
            tls = session
        }
        guard let tls else { handler?.didRead(bytes); return }
        if !tls.established {
            // Nothing unauthenticated may cost more than a client handshake: the TLS
            // handshake has its own byte cap (its time counts against --handshake-timeout).
            tls.handshakeBytes += bytes.count
            if tls.handshakeBytes > Limits.maxTLSHandshakeBytes {
                return tlsFailed("TLS handshake over \(Limits.maxTLSHandshakeBytes) bytes")
            }
        }
        var notified = tls.established
        let outcome = tls.read(bytes, scratch: loop.plainBuffer, scratchSize: Tunables.tlsPlainBufferBytes) { plain in
            if !notified { notified = true; handler?.tlsEstablished() }
            guard state == .open, let h = handler else { return false }
            h.didRead(plain)
            return state == .open
        }
        switch outcome {
        case .more: break
        case .closedByPeer: close(reason: "closed by peer")
        case .failed(let why): tlsFailed(why)
        }
        if !notified && tls.established && state == .open { handler?.tlsEstablished() }
        // Handshake messages (and the handshake's completion, which releases queued
        // plaintext) go out at the end of this turn.
        if state == .open || state == .draining, tls.pendingOutput > 0 || !outbox.isEmpty { scheduleFlush() }
    }

    /// RFC 9266-style channel binding for the peer handshake: 32 bytes exported from this
    /// connection's TLS session under `EXPORTER-tcp_chat-peer`; empty on plain TCP. Both ends
    /// of one TLS session get the same bytes; a relay in the middle has two sessions.
    var channelBinding: [UInt8] {
        guard let tls, tls.established else { return [] }
        return tls.exporter(label: "EXPORTER-tcp_chat-peer") ?? []
    }

    private func tlsFailed(_ why: String) {
        guard state == .open else { return }
        handler?.tlsFailed(why)
        // The alert OpenSSL queued goes out before the close.
        closeAfterFlush(reason: why, graceMs: Tunables.refusalGraceMs)
    }

    private func scheduleFlush() {
        if !outbox.scheduled { outbox.scheduled = true; loop.schedule(self) }
    }

    // MARK: Timer

    /// Arms the connection's one timer for `ms` from now (replacing any earlier arming).
    func setTimer(_ ms: UInt64) {
        loop.assertOnLoop()
        guard state != .closed else { return }
        uv_timer_start(timer, onTimer, ms, 0)
    }

    func cancelTimer() {
        guard state != .closed else { return }
        uv_timer_stop(timer)
    }

    fileprivate func handleTimer() {
        switch state {
        case .open: handler?.timerFired()
        case .draining, .lingering: close()
        case .closed: break
        }
    }

    // MARK: Writing

    /// Queues bytes for the end of this loop turn. Never writes, closes or frees
    /// synchronously: it may run inside a room's fan-out.
    func send(_ payload: Payload, length: Int) {
        loop.assertOnLoop()
        guard state == .open || state == .draining, !closeRequested else { return }
        outbox.append(payload, length: length)
    }

    var queuedBytes: Int { outbox.bytes }

    private func dropSlowConsumer() {
        closeRequested = true
        closeReason = "slow consumer: outgoing queue over \(maxQueueBytes) bytes"
        loop.stats.slowConsumerDrops += 1
        outbox.removeAll()
        outbox.closed = true
        if !outbox.scheduled { outbox.scheduled = true; loop.schedule(self) }
    }

    /// End of the loop turn: flush, or carry out a close requested mid-fan-out.
    func turnEnded() {
        loop.assertOnLoop()
        outbox.scheduled = false
        if closeRequested { close(); return }
        // What one turn may pile up: generous, since a burst the kernel takes at once is no
        // sign of a slow reader; only a bound on memory.
        if outbox.bytes > max(4 * maxQueueBytes, maxQueueBytes + (1 << 20)) {
            dropSlowConsumer()
            close()
            return
        }
        flush()
    }

    /// Hands everything queued to the kernel: one `writev` of many buffers (more only past
    /// `Tunables.maxWriteBufs`). What the kernel does not take at once waits in libuv's queue;
    /// past `maxQueueBytes` of that the reader is too slow and is dropped (docs/protocol.md §4).
    private func flush() {
        guard state == .open || state == .draining else { return }
        if let tls { return flushTLS(tls) }
        // Hoisted: reaching the loop through the batch's unowned connection cost two
        // retain/release pairs per buffer (44 % of the CPU in fanout).
        let bufs = loop.writeBufs
        while !outbox.isEmpty {
            let batch = loop.freeBatches.popLast() ?? WriteBatch()
            batch.conn = self
            let bytes = batch.fill(from: outbox, into: bufs)
            loop.stats.bytesOut += bytes
            // libuv copies the buffer descriptors into its request: one scratch array serves all.
            guard submit(batch, bufs, count: batch.count) else { return }
        }
        afterWrites()
    }

    /// The TLS flush: the queued plaintext is coalesced into records of up to 16 KiB
    /// (the loop's plaintext buffer), and every record this turn (handshake included) goes
    /// out as one write of one buffer, freed once the kernel has it. Before the
    /// handshake completes the plaintext waits in the outbox.
    private func flushTLS(_ tls: TLSSession) {
        if tls.established && !outbox.isEmpty {
            let scratch = loop.plainBuffer
            let cap = Tunables.tlsPlainBufferBytes
            var used = 0
            var ok = true
            while ok, let e = outbox.popFirst() {
                let base = UnsafeRawPointer(e.payload._withUnsafeGuaranteedRef { $0.bytes.baseAddress! })
                if e.length >= cap {
                    if used > 0 { ok = tls.write(UnsafeRawBufferPointer(start: scratch, count: used)); used = 0 }
                    if ok { ok = tls.write(UnsafeRawBufferPointer(start: base, count: e.length)) }
                } else {
                    if used + e.length > cap {
                        ok = tls.write(UnsafeRawBufferPointer(start: scratch, count: used))
                        used = 0
                    }
                    (scratch + used).copyMemory(from: base, byteCount: e.length)
                    used += e.length
                }
                e.payload.dropQueueRef()
            }
            if ok && used > 0 { ok = tls.write(UnsafeRawBufferPointer(start: scratch, count: used)) }
            if !ok { close(reason: "TLS write failed"); return }
        }
        if state == .draining && outbox.isEmpty && tls.established && !tlsShutdownSent {
            tlsShutdownSent = true
            tls.shutdown()
        }
        if let (bytes, count) = tls.takeOutput() {
            let batch = loop.freeBatches.popLast() ?? WriteBatch()
            batch.conn = self
            batch.owned = bytes
            loop.stats.bytesOut += count
            var buf = uv_buf_t(base: bytes.assumingMemoryBound(to: CChar.self), len: count)
            guard submit(batch, &buf, count: 1) else { return }
        }
        afterWrites()
    }

    private var tlsShutdownSent = false

    /// Hands one filled batch to the kernel. When libuv has nothing queued for this stream the
    /// bytes go straight to `writev` (`uv_try_write`): no request, no callback in the next
    /// turn, no poll change, and the batch is free again at once. What the kernel does not
    /// take (or everything, behind queued writes) goes to `uv_write`, the batch retained until
    /// its write callback. On failure the batch is released and the connection closed: false
    /// tells the flush to stop.
    @inline(__always)
    private func submit(_ batch: WriteBatch, _ bufs: UnsafeMutablePointer<uv_buf_t>, count: Int) -> Bool {
        var first = 0
        let n = uv_try_write(cuv_stream(tcp), bufs, UInt32(count))
        if n > 0 {
            var left = Int(n)
            while first < count && left >= bufs[first].len { left -= bufs[first].len; first += 1 }
            if first == count { recycle(batch); return true }
            bufs[first].base += left
            bufs[first].len -= left
        } else if n < 0 && n != UV_EAGAIN.rawValue {
            recycle(batch)
            close(reason: "write error: \(uvError(n))")
            return false
        }
        batch.req.pointee.data = Unmanaged.passRetained(batch).toOpaque()
        let rc = uv_write(batch.req, cuv_stream(tcp), bufs + first, UInt32(count - first), onWrite)
        if rc != 0 {
            Unmanaged<WriteBatch>.fromOpaque(batch.req.pointee.data).release()
            recycle(batch)
            close(reason: "write failed: \(uvError(rc))")
            return false
        }
        inflightWrites += 1
        return true
    }

    /// A batch whose bytes the kernel has (or that failed): its payloads released, kept for reuse.
    private func recycle(_ batch: WriteBatch) {
        batch.reset()
        if loop.freeBatches.count < Tunables.maxFreeWriteBatches { loop.freeBatches.append(batch) }
    }

    /// After handing bytes to libuv: the slow-consumer and memory checks, and the end of a drain.
    private func afterWrites() {
        let backlog = uv_stream_get_write_queue_size(cuv_stream(tcp))
        if backlog > maxQueueBytes {
            dropSlowConsumer()
            return
        }
        if let cap = backlogCap {
            noteBacklog(backlog)
            // Over the node's total: whoever still has a backlog at its flush goes (a reader
            // keeping up has none once the kernel took its bytes).
            if loop.clientBacklog > cap && backlog > 0 {
                loop.stats.memoryCapDrops += 1
                closeRequested = true
                closeReason = "slow consumer: all clients' queues over \(cap) bytes"
                close()
                return
            }
        }
        if state == .draining && inflightWrites == 0 { finishDraining() }
    }

    /// The node-wide cap this connection counts towards (clients only); nil for none.
    var backlogCap: Int?
    /// This connection's part of `loop.clientBacklog`.
    private var countedBacklog = 0

    private func noteBacklog(_ bytes: Int) {
        loop.clientBacklog += bytes - countedBacklog
        countedBacklog = bytes
    }

    fileprivate func writeDone(_ batch: WriteBatch, _ status: Int32) {
        assert(inflightWrites > 0, "a write callback with no write in flight")
        inflightWrites -= 1
        if backlogCap != nil && state != .closed { noteBacklog(uv_stream_get_write_queue_size(cuv_stream(tcp))) }
        recycle(batch)
        if status < 0 {
            if status != UV_ECANCELED.rawValue { close(reason: "write error: \(uvError(status))") }
            return
        }
        if state == .draining && inflightWrites == 0 && outbox.isEmpty { finishDraining() }
    }

    // MARK: Closing

    /// Sends what is queued, then closes politely (FIN, then close on EOF or after a grace time).
    func closeAfterFlush(reason: String, graceMs: UInt64 = Tunables.closeGraceMs) {
        loop.assertOnLoop()
        guard state == .open else { return }
        if closeReason.isEmpty { closeReason = reason }
        state = .draining
        stopReading()
        setTimerUnchecked(graceMs)
        if !outbox.scheduled { outbox.scheduled = true; loop.schedule(self) }
    }

    private func finishDraining() {
        state = .lingering
        // A FIN after the last byte; reading on (and discarding) until the peer's EOF avoids
        // the RST that closing with unread input would send, which could destroy the reply.
        let req = shutdownReq ?? .allocate(capacity: 1)
        shutdownReq = req
        req.pointee.data = Unmanaged.passUnretained(self).toOpaque()
        if uv_shutdown(req, cuv_stream(tcp), onShutdown) != 0 { close(); return }
        startReading()
    }

    /// Closes now: both handles, exactly once. Queued output is dropped.
    func close(reason: String = "") {
        loop.assertOnLoop()
        guard state != .closed else { return }
        if closeReason.isEmpty { closeReason = reason }
        state = .closed
        reading = false
        outbox.removeAll()
        outbox.closed = true
        noteBacklog(0)
        handler?.willClose()
        uv_close(cuv_handle(tcp), onHandleClosed)
        uv_close(cuv_handle(timer), onHandleClosed)
    }

    private func setTimerUnchecked(_ ms: UInt64) { uv_timer_start(timer, onTimer, ms, 0) }

    fileprivate func handleClosed(_ h: UnsafeMutablePointer<uv_handle_t>) {
        openHandles -= 1
        if h.withMemoryRebound(to: uv_tcp_t.self, capacity: 1, { $0 == tcp }) { tcp.deallocate() } else { timer.deallocate() }
        if openHandles == 0 {
            handler?.didClose()
            handler = nil
        }
    }
}

private func connection(_ data: UnsafeMutableRawPointer?) -> Connection {
    Unmanaged<Connection>.fromOpaque(data!).takeUnretainedValue()
}

private func onRead(_ s: UnsafeMutablePointer<uv_stream_t>?, _ nread: Int, _ buf: UnsafePointer<uv_buf_t>?) {
    connection(s!.pointee.data).handleRead(nread)
}

private func onWrite(_ req: UnsafeMutablePointer<uv_write_t>?, _ status: Int32) {
    let batch = Unmanaged<WriteBatch>.fromOpaque(req!.pointee.data).takeRetainedValue()
    batch.conn?.writeDone(batch, status)
}

/// One `uv_write` in flight and the payloads its buffers point into: libuv reads them until
/// the write callback, so they stay referenced here until then. Reused from the loop's pool
/// (`EventLoop.freeBatches`) by any connection.
final class WriteBatch {
    let req = UnsafeMutablePointer<uv_write_t>.allocate(capacity: 1)
    /// Taken from the outbox whole when it fits (an array swap), with their queue references.
    private var payloads = ContiguousArray<Outbox.Entry>()
    /// The connection outlives its writes: libuv cancels them before the close callbacks.
    unowned(unsafe) var conn: Connection?
    var count: Int { payloads.count }

    /// Takes up to `Tunables.maxWriteBufs` entries from `outbox` and writes their descriptors to `bufs`
    /// (the loop's scratch array, which `uv_write` copies). Returns the bytes taken.
    func fill(from outbox: Outbox, into bufs: UnsafeMutablePointer<uv_buf_t>) -> Int {
        let bytes = outbox.take(upTo: Tunables.maxWriteBufs, into: &payloads)
        payloads.withUnsafeBufferPointer { all in
            for (i, e) in all.enumerated() {
                let base = e.payload._withUnsafeGuaranteedRef { $0.bytes.baseAddress! }
                bufs[i] = uv_buf_t(base: base.assumingMemoryBound(to: CChar.self), len: e.length)
            }
        }
        return bytes
    }

    /// A TLS write's records (malloc'd by the loop BIO), freed when the write completes.
    var owned: UnsafeMutableRawPointer?

    func reset() {
        if let owned { free(owned); self.owned = nil }
        for e in payloads { e.payload.dropQueueRef() }
        payloads.removeAll(keepingCapacity: true)
    }

    deinit {
        req.deallocate()
    }
}

private func onConnect(_ req: UnsafeMutablePointer<uv_connect_t>?, _ status: Int32) {
    connection(req!.pointee.data).connected(status)
}

private func onShutdown(_ req: UnsafeMutablePointer<uv_shutdown_t>?, _ status: Int32) {}

private func onTimer(_ t: UnsafeMutablePointer<uv_timer_t>?) {
    connection(t!.pointee.data).handleTimer()
}

private func onHandleClosed(_ h: UnsafeMutablePointer<uv_handle_t>?) {
    let u = Unmanaged<Connection>.fromOpaque(h!.pointee.data)
    u.takeUnretainedValue().handleClosed(h!)
    u.release()
}

/// "1.2.3.4:80" or "[::1]:80".
func formatAddress(_ sa: UnsafePointer<sockaddr>) -> String {
    var buf = [CChar](repeating: 0, count: 96)
    let n = cuv_sockaddr_format(sa, &buf, buf.count)
    return String(decoding: buf.prefix(max(0, min(Int(n), buf.count - 1))).map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

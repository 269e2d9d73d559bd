import CUV
import ChatCore
#if canImport(Glibc)
import Glibc
#endif

/// One libuv loop and what every connection on it shares: the read buffer and the
/// list of connections with output to flush (CONTRIBUTING.md, "Contracts worth knowing": one loop, no locks).
/// Called on the node's loop thread only.
final class EventLoop {
    let raw: UnsafeMutablePointer<uv_loop_t>
    /// Reads run one at a time, so one buffer serves every connection (libuv's `alloc_cb` idiom).
    let readBuffer: UnsafeMutableRawPointer
    /// Plaintext for TLS connections: a decrypted chunk on its way to a handler, or queued
    /// output coalesced into one record at flush (never both at once: flushes run at the
    /// end of the turn, reads before).
    let plainBuffer: UnsafeMutableRawPointer
    /// Buffer descriptors for the `uv_write` being issued (libuv copies them).
    let writeBufs = UnsafeMutablePointer<uv_buf_t>.allocate(capacity: Tunables.maxWriteBufs)
    /// Connections with queued output or a pending close, handled once per loop turn.
    private var pending: [Connection] = []
    private let prepare: UnsafeMutablePointer<uv_prepare_t>
    /// Counters of the runtime, for metrics and status.
    var stats = RuntimeStats()
    /// Unsent bytes of every client connection together (libuv queues and outboxes).
    var clientBacklog = 0
    /// Write batches whose write completed, for reuse by any connection: a pool per loop,
    /// not per connection, so an idle session holds none (each is ~300 bytes).
    var freeBatches: [WriteBatch] = []
    private var prepareClosed = false
    #if DEBUG
    /// The thread that made the loop, the only one that may touch it or anything on it.
    private let owner = pthread_self()
    #endif

    /// Traps in a debug build when called off the loop's thread (swift-nio's
    /// `preconditionInEventLoop`); compiled out of release builds. Entry points of the
    /// loop-thread-only types call it.
    @inline(__always)
    func assertOnLoop(file: StaticString = #fileID, line: UInt = #line) {
        #if DEBUG
        precondition(pthread_equal(owner, pthread_self()) != 0, "called off the loop thread", file: file, line: line)
        #endif
    }

    init() {
        raw = .allocate(capacity: 1)
        precondition(uv_loop_init(raw) == 0, "uv_loop_init failed")
        readBuffer = .allocate(byteCount: Tunables.readBufferBytes, alignment: 16)
        plainBuffer = .allocate(byteCount: Tunables.tlsPlainBufferBytes, alignment: 16)
        prepare = .allocate(capacity: 1)
        uv_prepare_init(raw, prepare)
        prepare.pointee.data = Unmanaged.passUnretained(self).toOpaque()
        // A prepare handle runs just before the loop sleeps in poll (redis's beforeSleep): every
        // read and timer of this turn has been handled, so each connection gets at most one
        // coalesced write per turn, whatever queued the bytes.
        uv_prepare_start(prepare, onPrepare)
        // Only while there is work does the prepare handle keep the loop alive.
        uv_unref(cuv_handle(prepare))
    }

    /// Monotonic milliseconds, cached by libuv once per loop turn.
    var nowMs: UInt64 { uv_now(raw) }

    func schedule(_ c: Connection) {
        assertOnLoop()
        pending.append(c)
    }

    /// Called once per turn before the loop sleeps (the node re-arms its housekeeping timer
    /// when something started waiting on a deadline).
    var beforePoll: (() -> Void)?

    fileprivate func runPending() {
        // Flushing may schedule more (a close after a failed write): loop until empty.
        while !pending.isEmpty {
            let batch = pending
            pending.removeAll(keepingCapacity: true)
            for c in batch { c.turnEnded() }
        }
    }

    func run() {
        assertOnLoop()
        uv_run(raw, UV_RUN_DEFAULT)
    }

    /// Closes the loop's own handle; `finish()` after the loop has stopped.
    func closeOwnHandles() {
        guard !prepareClosed else { return }
        prepareClosed = true
        uv_close(cuv_handle(prepare), onPrepareClosed)
    }

    /// Runs the loop until every handle has closed, then closes it. Returns uv_loop_close's result.
    func finish() -> Int32 {
        uv_run(raw, UV_RUN_DEFAULT)
        // Connections scheduled after the prepare handle closed (a last close during the
        // stop) are never flushed: let them go, or they and the loop keep each other alive.
        pending.removeAll()
        freeBatches.removeAll()
        let rc = uv_loop_close(raw)
        if rc == 0 {
            raw.deallocate()
            readBuffer.deallocate()
            plainBuffer.deallocate()
            writeBufs.deallocate()
        }
        return rc
    }
}

private func onPrepare(_ h: UnsafeMutablePointer<uv_prepare_t>?) {
    let loop = Unmanaged<EventLoop>.fromOpaque(h!.pointee.data).takeUnretainedValue()
    loop.runPending()
    loop.beforePoll?()
}

private func onPrepareClosed(_ h: UnsafeMutablePointer<uv_handle_t>?) {
    h!.withMemoryRebound(to: uv_prepare_t.self, capacity: 1) { $0.deallocate() }
}

/// Fills `alloc_cb` with the loop's shared read buffer.
func onAlloc(_ h: UnsafeMutablePointer<uv_handle_t>?, _ suggested: Int, _ buf: UnsafeMutablePointer<uv_buf_t>?) {
    let c = Unmanaged<Connection>.fromOpaque(h!.pointee.data).takeUnretainedValue()
    buf!.pointee = uv_buf_init(c.loop.readBuffer.assumingMemoryBound(to: CChar.self), UInt32(Tunables.readBufferBytes))
}

/// libuv's error name and message, for logs.
func uvError(_ code: Int32) -> String {
    "\(String(cString: uv_err_name(code))): \(String(cString: uv_strerror(code)))"
}

/// What the runtime counts (the Hub and Cluster count the rest). Plain integers: one thread.
struct RuntimeStats {
    var bytesIn = 0
    var bytesOut = 0
    var accepted = 0
    var acceptErrors = 0
    var slowConsumerDrops = 0
    var memoryCapDrops = 0
    var rateLimitPauses = 0
    var handshakeFailures = 0
    var handshakeTimeouts = 0
    var tlsHandshakeFailures = 0
    var tlsReloads = 0
    var tlsReloadFailures = 0
    var peerProtocolErrors = 0
    /// Connections closed at accept because too many were unauthenticated.
    var pendingLimitRefusals = 0
    /// Messages of new origins ignored because the cluster was at its node limit.
    var originsRefused = 0
}

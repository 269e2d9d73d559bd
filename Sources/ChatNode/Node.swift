import CUV
import ChatCore
import Logging

/// A chat node: one libuv loop, its listener, its clients and the Hub that decides
/// everything. `init` binds; `run()` serves until SIGINT/SIGTERM, then stops cleanly:
/// every client gets `/exit`, every handle is closed, and the loop closes (SPEC.md §2).
public final class Node {
    let loop = EventLoop()
    let hub: Hub
    let logger: Logger
    private var listener: Listener?
    private var clients: [ObjectIdentifier: ClientConnection] = [:]
    private var nextID: UInt64 = 0
    private var signals: [UnsafeMutablePointer<uv_signal_t>] = []
    private var forceTimer: UnsafeMutablePointer<uv_timer_t>?
    private var stopping = false
    private var lastAcceptErrorMs: UInt64 = 0
    private var acceptErrors = 0

    /// How long stopping may take before remaining connections are cut.
    static let stopGraceMs: UInt64 = 1500

    /// The address the node really listens on (`127.0.0.1:40123`).
    public var listeningAddress: String { listener?.boundAddress ?? "" }

    public init(_ config: NodeConfiguration) throws {
        cuv_ignore_sigpipe()
        hub = Hub(limits: config.limits)
        logger = config.logger
        do {
            listener = try Listener(loop: loop, host: config.host, port: config.port) { [unowned self] status in
                self.accept(status)
            }
        } catch {
            loop.closeOwnHandles()
            _ = loop.finish()
            throw error
        }
        for sig in [SIGINT, SIGTERM] {
            let h = UnsafeMutablePointer<uv_signal_t>.allocate(capacity: 1)
            uv_signal_init(loop.raw, h)
            h.pointee.data = Unmanaged.passUnretained(self).toOpaque()
            uv_signal_start(h, onSignal, sig)
            signals.append(h)
        }
    }

    /// Serves until stopped. Returns the process exit code.
    public func run() -> Int32 {
        logger.info("node started", metadata: ["listen": "\(listeningAddress)"])
        loop.run()
        let rc = loop.finish()
        if rc != 0 {
            logger.error("event loop did not close cleanly", metadata: ["error": "\(uvError(rc))"])
            return 1
        }
        logger.info("node stopped")
        return 0
    }

    // MARK: Connections

    private func accept(_ status: Int32) {
        guard status == 0 else {
            // EMFILE and friends: libuv's spare-fd trick already shed the pending
            // connection, so nothing spins; log at most once a second.
            acceptErrors += 1
            let now = loop.nowMs
            if now - lastAcceptErrorMs >= 1000 || lastAcceptErrorMs == 0 {
                logger.warning("cannot accept connections", metadata: [
                    "error": "\(uvError(status))", "count": "\(acceptErrors)"])
                lastAcceptErrorMs = now
                acceptErrors = 0
            }
            return
        }
        guard let server = listener?.tcp else { return }
        nextID += 1
        guard let c = ClientConnection(node: self, server: server, id: nextID) else { return }
        let limit = hub.limits.maxConnections
        if limit > 0 && clients.count >= limit {
            logger.warning("connection limit reached", metadata: ["limit": "\(limit)"])
            c.close(reason: "connection limit")
            return
        }
        clients[ObjectIdentifier(c)] = c
        c.start()
    }

    func forget(_ c: Connection) {
        clients[ObjectIdentifier(c)] = nil
        if stopping && clients.isEmpty { closeForceTimer() }
    }

    // MARK: Stopping

    fileprivate func stop(signal: Int32) {
        guard !stopping else { return }
        stopping = true
        logger.notice("stopping", metadata: ["signal": "\(signal == SIGINT ? "SIGINT" : "SIGTERM")",
                                              "clients": "\(clients.count)"])
        listener?.close()
        listener = nil
        for h in signals { uv_close(cuv_handle(h), onSignalClosed) }
        signals.removeAll()
        loop.closeOwnHandles()
        for c in clients.values { c.sayGoodbye() }
        if !clients.isEmpty {
            let t = UnsafeMutablePointer<uv_timer_t>.allocate(capacity: 1)
            uv_timer_init(loop.raw, t)
            t.pointee.data = Unmanaged.passUnretained(self).toOpaque()
            uv_timer_start(t, onForceTimer, Node.stopGraceMs, 0)
            forceTimer = t
        }
    }

    fileprivate func forceClose() {
        for c in Array(clients.values) { c.close(reason: "node stopping") }
        closeForceTimer()
    }

    private func closeForceTimer() {
        guard let t = forceTimer else { return }
        forceTimer = nil
        uv_close(cuv_handle(t), onTimerClosed)
    }
}

private func onSignal(_ h: UnsafeMutablePointer<uv_signal_t>?, _ signum: Int32) {
    Unmanaged<Node>.fromOpaque(h!.pointee.data).takeUnretainedValue().stop(signal: signum)
}

private func onSignalClosed(_ h: UnsafeMutablePointer<uv_handle_t>?) {
    h!.withMemoryRebound(to: uv_signal_t.self, capacity: 1) { $0.deallocate() }
}

private func onForceTimer(_ t: UnsafeMutablePointer<uv_timer_t>?) {
    Unmanaged<Node>.fromOpaque(t!.pointee.data).takeUnretainedValue().forceClose()
}

private func onTimerClosed(_ h: UnsafeMutablePointer<uv_handle_t>?) {
    h!.withMemoryRebound(to: uv_timer_t.self, capacity: 1) { $0.deallocate() }
}

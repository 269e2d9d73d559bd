import ChatCore
import Logging

/// What a node is started with: where to listen, its limits, and its cluster (SPEC.md §2).
public struct NodeConfiguration: Sendable {
    public var host: String
    public var port: Int
    public var limits: Limits
    public var logger: Logger
    /// `--peer HOST:PORT`, repeatable: nodes of the cluster to join.
    public var peers: [String] = []
    /// `--advertise HOST:PORT`: the address other nodes dial; default the listen address.
    public var advertise: String?
    /// The cluster secret (`--cluster-secret-file`), or nil for an open cluster.
    public var clusterSecret: [UInt8]?
    /// `--heartbeat-ms`, 1000.
    public var heartbeatMs: UInt64 = 1000
    /// `--peer-timeout-ms`, 3000: a node silent this long is dead.
    public var peerTimeoutMs: UInt64 = 3000
    /// `--peer-queue-bytes`, 16 MiB: a peer link's outgoing queue; past it the link is dropped and redialed.
    public var peerQueueBytes: Int = 16 * 1024 * 1024
    /// `--metrics HOST:PORT`: where Prometheus metrics are served; nil for none.
    public var metricsAddress: String?
    /// `--web-origins`: origins besides the node's own host whose pages may open WebSocket sessions.
    public var webOrigins = OriginPolicy()

    /// `--tls-cert`, `--tls-key`, `--tls-ca`: TLS on the node's port (detected by the first
    /// byte) and on every peer link it dials; nil for plaintext only (docs/tls.md).
    public var tls: TLSFiles?
    /// `--tls-clients required`: plaintext clients and status requests are refused.
    public var tlsClientsRequired = false

    public init(host: String = "localhost", port: Int = 8888, limits: Limits = Limits(), logger: Logger) {
        self.host = host
        self.port = port
        self.limits = limits
        self.logger = logger
    }
}

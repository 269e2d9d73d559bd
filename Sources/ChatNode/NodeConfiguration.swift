import ChatCore
import Logging

/// What a node is started with: where to listen and its limits (SPEC.md §2).
public struct NodeConfiguration: Sendable {
    public var host: String
    public var port: Int
    public var limits: Limits
    public var logger: Logger

    public init(host: String = "localhost", port: Int = 8888, limits: Limits = Limits(), logger: Logger) {
        self.host = host
        self.port = port
        self.limits = limits
        self.logger = logger
    }
}

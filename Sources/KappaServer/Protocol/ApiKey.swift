/// The Kafka APIs this server implements and the versions of each, all pre-flexible (no
/// tagged fields, which librdkafka before 2.2 misparses). The ranges are what the
/// clients named in the README need, measured against a Kafka-compatible broker; every
/// version in a range is implemented, not only advertised (kafka-python 2.0 sends
/// Produce 7, Fetch 4, ListOffsets 1, Metadata 1, OffsetCommit 2, OffsetFetch 1,
/// JoinGroup 2; librdkafka 2.0 the lowest of most ranges).
public enum ApiKey: Int16, CaseIterable, Sendable, CustomStringConvertible {
    case produce = 0
    case fetch = 1
    case listOffsets = 2
    case metadata = 3
    case offsetCommit = 8
    case offsetFetch = 9
    case findCoordinator = 10
    case joinGroup = 11
    case heartbeat = 12
    case leaveGroup = 13
    case syncGroup = 14
    case describeGroups = 15
    case listGroups = 16
    case apiVersions = 18
    case createTopics = 19
    case deleteTopics = 20
    case initProducerId = 22

    /// The versions served. The first flexible version of each API lies just above.
    public var versions: ClosedRange<Int16> {
        switch self {
        case .produce: 0...8  // v0-2 for librdkafka 2.0's LZ4 check: see 00_Produce.swift
        case .fetch: 4...11
        case .listOffsets: 1...5
        case .metadata: 0...8
        case .offsetCommit: 2...7
        case .offsetFetch: 1...5
        case .findCoordinator: 0...2
        case .joinGroup: 0...5
        case .heartbeat: 0...3
        case .leaveGroup: 0...3
        case .syncGroup: 0...3
        case .describeGroups: 0...4
        case .listGroups: 0...2
        case .apiVersions: 0...2
        case .createTopics: 2...4
        case .deleteTopics: 1...3
        case .initProducerId: 0...1
        }
    }

    public var description: String {
        switch self {
        case .produce: "Produce"
        case .fetch: "Fetch"
        case .listOffsets: "ListOffsets"
        case .metadata: "Metadata"
        case .offsetCommit: "OffsetCommit"
        case .offsetFetch: "OffsetFetch"
        case .findCoordinator: "FindCoordinator"
        case .joinGroup: "JoinGroup"
        case .heartbeat: "Heartbeat"
        case .leaveGroup: "LeaveGroup"
        case .syncGroup: "SyncGroup"
        case .describeGroups: "DescribeGroups"
        case .listGroups: "ListGroups"
        case .apiVersions: "ApiVersions"
        case .createTopics: "CreateTopics"
        case .deleteTopics: "DeleteTopics"
        case .initProducerId: "InitProducerId"
        }
    }
}

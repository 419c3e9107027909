/// Kafka's error codes (int16 on the wire), those this server answers with. The numbers
/// are Kafka's (org.apache.kafka.common.protocol.Errors); a client acts on them, so each
/// is chosen for what the client will do next (retry, refresh metadata, rejoin, give up).
public enum ErrorCode: Int16, Sendable, CustomStringConvertible {
    case none = 0
    case offsetOutOfRange = 1
    case corruptMessage = 2
    case unknownTopicOrPartition = 3
    case messageTooLarge = 10
    case coordinatorNotAvailable = 15
    case invalidTopic = 17
    case invalidRequiredAcks = 21
    case illegalGeneration = 22
    case inconsistentGroupProtocol = 23
    case invalidGroupId = 24
    case unknownMemberId = 25
    case invalidSessionTimeout = 26
    case rebalanceInProgress = 27
    case invalidCommitOffsetSize = 28
    case topicAuthorizationFailed = 29
    case unsupportedVersion = 35
    case topicAlreadyExists = 36
    case invalidPartitions = 37
    case invalidReplicationFactor = 38
    case invalidReplicaAssignment = 39
    case invalidConfig = 40
    case invalidRequest = 42
    case policyViolation = 44
    case outOfOrderSequenceNumber = 45
    case invalidProducerEpoch = 47
    case transactionalIdAuthorizationFailed = 53
    case kafkaStorageError = 56
    case fetchSessionIdNotFound = 70
    case unsupportedCompressionType = 76
    case memberIdRequired = 79
    case invalidRecord = 87

    public var description: String { "\(self.rawValue) (\(name))" }

    public var name: String {
        switch self {
        case .none: "NONE"
        case .offsetOutOfRange: "OFFSET_OUT_OF_RANGE"
        case .corruptMessage: "CORRUPT_MESSAGE"
        case .unknownTopicOrPartition: "UNKNOWN_TOPIC_OR_PARTITION"
        case .messageTooLarge: "MESSAGE_TOO_LARGE"
        case .coordinatorNotAvailable: "COORDINATOR_NOT_AVAILABLE"
        case .invalidTopic: "INVALID_TOPIC_EXCEPTION"
        case .invalidRequiredAcks: "INVALID_REQUIRED_ACKS"
        case .illegalGeneration: "ILLEGAL_GENERATION"
        case .inconsistentGroupProtocol: "INCONSISTENT_GROUP_PROTOCOL"
        case .invalidGroupId: "INVALID_GROUP_ID"
        case .unknownMemberId: "UNKNOWN_MEMBER_ID"
        case .invalidSessionTimeout: "INVALID_SESSION_TIMEOUT"
        case .rebalanceInProgress: "REBALANCE_IN_PROGRESS"
        case .invalidCommitOffsetSize: "INVALID_COMMIT_OFFSET_SIZE"
        case .topicAuthorizationFailed: "TOPIC_AUTHORIZATION_FAILED"
        case .unsupportedVersion: "UNSUPPORTED_VERSION"
        case .topicAlreadyExists: "TOPIC_ALREADY_EXISTS"
        case .invalidPartitions: "INVALID_PARTITIONS"
        case .invalidReplicationFactor: "INVALID_REPLICATION_FACTOR"
        case .invalidReplicaAssignment: "INVALID_REPLICA_ASSIGNMENT"
        case .invalidConfig: "INVALID_CONFIG"
        case .invalidRequest: "INVALID_REQUEST"
        case .policyViolation: "POLICY_VIOLATION"
        case .outOfOrderSequenceNumber: "OUT_OF_ORDER_SEQUENCE_NUMBER"
        case .invalidProducerEpoch: "INVALID_PRODUCER_EPOCH"
        case .transactionalIdAuthorizationFailed: "TRANSACTIONAL_ID_AUTHORIZATION_FAILED"
        case .kafkaStorageError: "KAFKA_STORAGE_ERROR"
        case .fetchSessionIdNotFound: "FETCH_SESSION_ID_NOT_FOUND"
        case .unsupportedCompressionType: "UNSUPPORTED_COMPRESSION_TYPE"
        case .memberIdRequired: "MEMBER_ID_REQUIRED"
        case .invalidRecord: "INVALID_RECORD"
        }
    }
}

/// "Authorized operations: not computed" (Kafka's Integer.MIN_VALUE): this server has no
/// ACLs yet, and a client that did not ask for them must not read them as "none allowed".
let authorizedOperationsNotComputed = Int32.min

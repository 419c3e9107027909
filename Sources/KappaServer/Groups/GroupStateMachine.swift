/// One consumer group of the classic Kafka protocol (JoinGroup, SyncGroup, Heartbeat,
/// LeaveGroup) as an explicit state machine, after Kafka's GroupCoordinator:
///
/// ```
///            first join                 all members joined, or the
///   Empty ─────────────▶ Preparing ───  join deadline passed ───▶ Completing
///     ▲                  Rebalance ◀──────────────────────┐       Rebalance
///     │ join completes      ▲   member joins, leaves,     │           │ leader's
///     │ with no member      │   times out, or changes     │           │ SyncGroup
///     └─────────────────────┘   its protocols             │           ▼
///                                                         └──────── Stable
/// ```
/// - Preparing: members (re)join; each join waits (its `Waiter` is kept) until every
///   known member has joined, or the join deadline passes (the largest rebalance timeout)
///   and the members that did not rejoin are removed. A group forming from empty first
///   waits `initialDelay`, extended by the same for each newcomer up to the rebalance
///   timeout (Kafka's group.initial.rebalance.delay.ms), so members starting together
///   land in one generation.
/// - Completing: the join answers went out (the leader's with every member's metadata);
///   the group waits for the leader's SyncGroup with the assignment. Followers' syncs wait.
/// - Stable: everyone has its assignment; heartbeats keep members alive.
/// A member whose session times out (no heartbeat, join, sync or commit within its
/// session timeout, while not waiting on a join or sync) is removed, which rebalances.
/// A member id handed out with MEMBER_ID_REQUIRED (JoinGroup v4+, KIP-394) is pending
/// until it joins with it, or for one session timeout.
///
/// A value type with no clock and no I/O: every method takes `now` (monotonic
/// nanoseconds) and returns the answers to give — to the caller's request and to waits
/// it completed — as `Action`s for the caller to perform; `nextDeadline` says when to
/// call `tick`. Member ids come from the injected `newMemberId`. Tested alone with a
/// manual clock (`GroupStateMachineTests`).
struct GroupStateMachine<Waiter> {
    enum State: String, Sendable {
        case empty = "Empty"
        case preparingRebalance = "PreparingRebalance"
        case completingRebalance = "CompletingRebalance"
        case stable = "Stable"
    }

    struct MemberProtocol: Equatable {
        var name: String
        var metadata: [UInt8]
    }

    struct JoinRequest {
        var memberId: String
        var groupInstanceId: String?
        var clientId: String
        var clientHost: String
        var sessionTimeoutNanos: Int64
        var rebalanceTimeoutNanos: Int64
        var protocolType: String
        var protocols: [MemberProtocol]
        /// JoinGroup v4+: an empty member id gets MEMBER_ID_REQUIRED and a new id.
        var requireKnownMemberId: Bool
    }

    struct JoinMember: Equatable {
        var memberId: String
        var groupInstanceId: String?
        var metadata: [UInt8]
    }

    struct JoinResult: Equatable {
        var errorCode: ErrorCode
        var generation: Int32 = -1
        var protocolName: String = ""
        var leader: String = ""
        var memberId: String = ""
        /// Every member's metadata, for the leader only.
        var members: [JoinMember] = []
    }

    struct SyncResult: Equatable {
        var errorCode: ErrorCode
        var assignment: [UInt8] = []
    }

    enum Action {
        case join(Waiter, JoinResult)
        case sync(Waiter, SyncResult)
    }

    struct Member {
        var id: String
        var groupInstanceId: String?
        var clientId: String
        var clientHost: String
        var sessionTimeoutNanos: Int64
        var rebalanceTimeoutNanos: Int64
        var protocols: [MemberProtocol]
        var assignment: [UInt8] = []
        var joinWaiter: Waiter?
        var syncWaiter: Waiter?
        var sessionDeadline: Int64

        func metadata(for protocolName: String) -> [UInt8] {
            protocols.first { $0.name == protocolName }?.metadata ?? []
        }
    }

    let groupId: String
    let initialDelayNanos: Int64
    let sessionTimeoutNanos: ClosedRange<Int64>
    private let newMemberId: (String) -> String

    private(set) var state: State = .empty
    private(set) var generation: Int32 = 0
    private(set) var protocolType: String?
    private(set) var protocolName: String?
    private(set) var leader: String?
    /// In join order: the first member becomes the leader when there is none.
    private(set) var members: [Member] = []
    private(set) var pendingMembers: [String: Int64] = [:]
    private var joinDeadline: Int64?
    private var syncDeadline: Int64?
    /// The initial delay of a group forming from empty: remaining extension, and whether
    /// someone joined during the current delay.
    private var initialDelay: (remainingNanos: Int64, newcomer: Bool)?

    init(groupId: String, initialDelayNanos: Int64, sessionTimeoutNanos: ClosedRange<Int64>, newMemberId: @escaping (String) -> String) {
        self.groupId = groupId
        self.initialDelayNanos = initialDelayNanos
        self.sessionTimeoutNanos = sessionTimeoutNanos
        self.newMemberId = newMemberId
    }

    /// When `tick` must be called next (a session, join, sync or pending deadline).
    var nextDeadline: Int64? {
        var d: [Int64] = Array(pendingMembers.values)
        if let joinDeadline { d.append(joinDeadline) }
        if let syncDeadline { d.append(syncDeadline) }
        for m in members where m.joinWaiter == nil && m.syncWaiter == nil { d.append(m.sessionDeadline) }
        return d.min()
    }

    func member(_ id: String) -> Member? { members.first { $0.id == id } }
    private func index(_ id: String) -> Int? { members.firstIndex { $0.id == id } }

    // MARK: JoinGroup

    mutating func join(_ request: JoinRequest, waiter: Waiter, now: Int64) -> [Action] {
        func fail(_ code: ErrorCode) -> [Action] { [.join(waiter, JoinResult(errorCode: code, memberId: request.memberId))] }
        guard sessionTimeoutNanos.contains(request.sessionTimeoutNanos) else { return fail(.invalidSessionTimeout) }
        guard !request.protocols.isEmpty, !request.protocolType.isEmpty else { return fail(.inconsistentGroupProtocol) }
        if !members.isEmpty, !supports(request) { return fail(.inconsistentGroupProtocol) }
        if request.memberId.isEmpty {
            let id = newMemberId(request.clientId)
            if request.requireKnownMemberId {
                pendingMembers[id] = now + request.sessionTimeoutNanos
                return [.join(waiter, JoinResult(errorCode: .memberIdRequired, memberId: id))]
            }
            return addMember(id, request, waiter: waiter, now: now)
        }
        if pendingMembers.removeValue(forKey: request.memberId) != nil {
            return addMember(request.memberId, request, waiter: waiter, now: now)
        }
        guard let i = index(request.memberId), state != .empty else { return fail(.unknownMemberId) }
        switch state {
        case .preparingRebalance:
            return updateMember(i, request, waiter: waiter, now: now)
        case .completingRebalance:
            if members[i].protocols == request.protocols { return [.join(waiter, joinResult(for: members[i]))] }
            return updateMember(i, request, waiter: waiter, now: now)
        case .stable:
            if members[i].id == leader || members[i].protocols != request.protocols {
                return updateMember(i, request, waiter: waiter, now: now)
            }
            members[i].sessionDeadline = now + members[i].sessionTimeoutNanos
            return [.join(waiter, joinResult(for: members[i]))]
        case .empty:
            return fail(.unknownMemberId)
        }
    }

    /// The protocol type matches and some protocol is supported by every member and the
    /// one joining.
    private func supports(_ request: JoinRequest) -> Bool {
        guard request.protocolType == protocolType else { return false }
        return !candidateProtocols(including: request.protocols.map(\.name)).isEmpty
    }

    private func candidateProtocols(including extra: [String]? = nil) -> [String] {
        var sets = members.map { Set($0.protocols.map(\.name)) }
        if let extra { sets.append(Set(extra)) }
        guard var common = sets.first else { return [] }
        for s in sets.dropFirst() { common.formIntersection(s) }
        let order = extra ?? members.first?.protocols.map(\.name) ?? []
        return order.filter { common.contains($0) }
    }

    private mutating func addMember(_ id: String, _ request: JoinRequest, waiter: Waiter, now: Int64) -> [Action] {
        if members.isEmpty { protocolType = request.protocolType }
        members.append(Member(id: id, groupInstanceId: request.groupInstanceId, clientId: request.clientId, clientHost: request.clientHost,
                              sessionTimeoutNanos: request.sessionTimeoutNanos, rebalanceTimeoutNanos: request.rebalanceTimeoutNanos,
                              protocols: request.protocols, joinWaiter: waiter, sessionDeadline: now + request.sessionTimeoutNanos))
        switch state {
        case .empty:
            state = .preparingRebalance
            let rebalance = request.rebalanceTimeoutNanos
            let delay = min(initialDelayNanos, rebalance)
            initialDelay = (remainingNanos: rebalance - delay, newcomer: false)
            joinDeadline = now + delay
            if delay == 0 {
                initialDelay = nil
                return tryCompleteJoin(now: now)
            }
            return []
        case .preparingRebalance:
            if initialDelay != nil {
                initialDelay!.newcomer = true
                return []
            }
            return tryCompleteJoin(now: now)
        case .completingRebalance, .stable:
            return prepareRebalance(now: now)
        }
    }

    private mutating func updateMember(_ i: Int, _ request: JoinRequest, waiter: Waiter, now: Int64) -> [Action] {
        var actions: [Action] = []
        if let old = members[i].joinWaiter { actions.append(.join(old, JoinResult(errorCode: .rebalanceInProgress, memberId: members[i].id))) }
        members[i].protocols = request.protocols
        members[i].sessionTimeoutNanos = request.sessionTimeoutNanos
        members[i].rebalanceTimeoutNanos = request.rebalanceTimeoutNanos
        members[i].joinWaiter = waiter
        if state == .preparingRebalance { return actions + tryCompleteJoin(now: now) }
        return actions + prepareRebalance(now: now)
    }

    /// Enters PreparingRebalance: pending syncs are told to rejoin; members have until
    /// the largest rebalance timeout to rejoin.
    private mutating func prepareRebalance(now: Int64) -> [Action] {
        var actions: [Action] = []
        if state == .completingRebalance {
            for i in members.indices {
                if let w = members[i].syncWaiter { actions.append(.sync(w, SyncResult(errorCode: .rebalanceInProgress))) }
                members[i].syncWaiter = nil
            }
        }
        for i in members.indices { members[i].assignment = [] }
        state = .preparingRebalance
        syncDeadline = nil
        joinDeadline = now + (members.map(\.rebalanceTimeoutNanos).max() ?? 0)
        return actions + tryCompleteJoin(now: now)
    }

    private mutating func tryCompleteJoin(now: Int64) -> [Action] {
        guard state == .preparingRebalance, initialDelay == nil else { return [] }
        guard members.allSatisfy({ $0.joinWaiter != nil }), pendingMembers.isEmpty else { return [] }
        return completeJoin(now: now)
    }

    /// Ends the join phase with the members that joined: a new generation, a protocol, a
    /// leader, and an answer to every waiting join.
    private mutating func completeJoin(now: Int64) -> [Action] {
        members.removeAll { $0.joinWaiter == nil }
        joinDeadline = nil
        initialDelay = nil
        generation &+= 1
        guard !members.isEmpty else {
            state = .empty
            protocolName = nil
            protocolType = nil
            leader = nil
            return []
        }
        protocolName = selectProtocol()
        if leader == nil || member(leader!) == nil { leader = members[0].id }
        state = .completingRebalance
        syncDeadline = now + (members.map(\.rebalanceTimeoutNanos).max() ?? 0)
        var actions: [Action] = []
        for i in members.indices {
            members[i].sessionDeadline = now + members[i].sessionTimeoutNanos
            if let w = members[i].joinWaiter { actions.append(.join(w, joinResult(for: members[i]))) }
            members[i].joinWaiter = nil
        }
        return actions
    }

    /// Kafka's vote: each member votes for its most preferred protocol among those every
    /// member supports; the most votes wins, ties going to the earlier candidate.
    private func selectProtocol() -> String {
        let candidates = candidateProtocols()
        precondition(!candidates.isEmpty, "members are admitted only with a protocol in common")
        var votes: [String: Int] = [:]
        for m in members {
            if let choice = m.protocols.first(where: { candidates.contains($0.name) }) { votes[choice.name, default: 0] += 1 }
        }
        return candidates.max { (votes[$0] ?? 0) < (votes[$1] ?? 0) || ((votes[$0] ?? 0) == (votes[$1] ?? 0) && candidates.firstIndex(of: $0)! > candidates.firstIndex(of: $1)!) }!
    }

    private func joinResult(for m: Member) -> JoinResult {
        let name = protocolName ?? ""
        var result = JoinResult(errorCode: .none, generation: generation, protocolName: name, leader: leader ?? "", memberId: m.id)
        if m.id == leader {
            result.members = members.map { JoinMember(memberId: $0.id, groupInstanceId: $0.groupInstanceId, metadata: $0.metadata(for: name)) }
        }
        return result
    }

    // MARK: SyncGroup

    mutating func sync(memberId: String, generation gen: Int32, assignments: [String: [UInt8]], waiter: Waiter, now: Int64) -> [Action] {
        func answer(_ code: ErrorCode) -> [Action] { [.sync(waiter, SyncResult(errorCode: code))] }
        guard let i = index(memberId) else { return answer(.unknownMemberId) }
        guard gen == generation else { return answer(.illegalGeneration) }
        switch state {
        case .empty: return answer(.unknownMemberId)
        case .preparingRebalance: return answer(.rebalanceInProgress)
        case .stable:
            members[i].sessionDeadline = now + members[i].sessionTimeoutNanos
            return [.sync(waiter, SyncResult(errorCode: .none, assignment: members[i].assignment))]
        case .completingRebalance:
            var actions: [Action] = []
            if let old = members[i].syncWaiter { actions.append(.sync(old, SyncResult(errorCode: .rebalanceInProgress))) }
            members[i].syncWaiter = waiter
            members[i].sessionDeadline = now + members[i].sessionTimeoutNanos
            guard memberId == leader else { return actions }
            for j in members.indices { members[j].assignment = assignments[members[j].id] ?? [] }
            state = .stable
            syncDeadline = nil
            for j in members.indices {
                if let w = members[j].syncWaiter { actions.append(.sync(w, SyncResult(errorCode: .none, assignment: members[j].assignment))) }
                members[j].syncWaiter = nil
                members[j].sessionDeadline = now + members[j].sessionTimeoutNanos
            }
            return actions
        }
    }

    // MARK: Heartbeat, LeaveGroup, OffsetCommit

    mutating func heartbeat(memberId: String, generation gen: Int32, now: Int64) -> ErrorCode {
        guard state != .empty, let i = index(memberId) else { return .unknownMemberId }
        guard gen == generation else { return .illegalGeneration }
        members[i].sessionDeadline = now + members[i].sessionTimeoutNanos
        return state == .preparingRebalance ? .rebalanceInProgress : .none
    }

    /// Removes members; each gets NONE or UNKNOWN_MEMBER_ID.
    mutating func leave(memberIds: [String], now: Int64) -> ([ErrorCode], [Action]) {
        var codes: [ErrorCode] = []
        var actions: [Action] = []
        for id in memberIds {
            if pendingMembers.removeValue(forKey: id) != nil {
                codes.append(.none)
                actions += tryCompleteJoin(now: now)
            } else if index(id) != nil {
                codes.append(.none)
                actions += remove(id, now: now)
            } else {
                codes.append(.unknownMemberId)
            }
        }
        return (codes, actions)
    }

    private mutating func remove(_ id: String, now: Int64) -> [Action] {
        guard let i = index(id) else { return [] }
        let m = members.remove(at: i)
        var actions: [Action] = []
        if let w = m.joinWaiter { actions.append(.join(w, JoinResult(errorCode: .unknownMemberId, memberId: id))) }
        if let w = m.syncWaiter { actions.append(.sync(w, SyncResult(errorCode: .unknownMemberId))) }
        switch state {
        case .empty: break
        case .preparingRebalance: actions += tryCompleteJoin(now: now)
        case .completingRebalance, .stable: actions += prepareRebalance(now: now)
        }
        return actions
    }

    /// Whether an offset commit may be stored (Kafka's rules): a standalone consumer
    /// (generation < 0) only while the group has no members; a member of the current
    /// generation otherwise, also while the group rebalances, except between join and sync.
    mutating func commitAllowed(memberId: String, generation gen: Int32, now: Int64) -> ErrorCode {
        if gen < 0 && members.isEmpty { return .none }
        if state == .completingRebalance { return .rebalanceInProgress }
        guard let i = index(memberId) else { return .unknownMemberId }
        guard gen == generation else { return .illegalGeneration }
        members[i].sessionDeadline = now + members[i].sessionTimeoutNanos
        return .none
    }

    // MARK: time

    /// Applies every deadline that has passed: pending ids and sessions expire, a join
    /// or initial delay ends, a sync that never came removes who did not send it.
    mutating func tick(now: Int64) -> [Action] {
        var actions: [Action] = []
        for (id, deadline) in pendingMembers where deadline <= now {
            pendingMembers[id] = nil
            actions += tryCompleteJoin(now: now)
        }
        for m in members where m.joinWaiter == nil && m.syncWaiter == nil && m.sessionDeadline <= now {
            actions += remove(m.id, now: now)
        }
        if state == .completingRebalance, let d = syncDeadline, d <= now {
            for m in members where m.syncWaiter == nil { actions += remove(m.id, now: now) }
        }
        if state == .preparingRebalance, let d = joinDeadline, d <= now {
            if let delay = initialDelay, delay.newcomer, delay.remainingNanos > 0 {
                let step = min(initialDelayNanos, delay.remainingNanos)
                initialDelay = (remainingNanos: delay.remainingNanos - step, newcomer: false)
                joinDeadline = now + step
            } else {
                actions += completeJoin(now: now)
            }
        }
        return actions
    }

    /// Answers every wait with COORDINATOR_NOT_AVAILABLE (the server is stopping).
    mutating func abandonWaits() -> [Action] {
        var actions: [Action] = []
        for i in members.indices {
            if let w = members[i].joinWaiter { actions.append(.join(w, JoinResult(errorCode: .coordinatorNotAvailable, memberId: members[i].id))) }
            if let w = members[i].syncWaiter { actions.append(.sync(w, SyncResult(errorCode: .coordinatorNotAvailable))) }
            members[i].joinWaiter = nil
            members[i].syncWaiter = nil
        }
        return actions
    }
}

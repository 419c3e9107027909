import Foundation
import KappaCore
import NIOCore

/// A JoinGroup or SyncGroup request waiting for its group: answered by the action the
/// state machine returns when the wait ends.
struct GroupWaiter {
    var header: RequestHeader
    var responder: Responder
}

/// The consumer groups this server coordinates: one `GroupStateMachine` per group, and
/// one timer per group set to the machine's next deadline. Performing the machine's
/// actions (sending join and sync answers) is the broker's. A group is in memory while it
/// has members or pending member ids, and dropped when it is empty (a member of an
/// earlier incarnation has an id no later one hands out, so it can only be refused);
/// committed offsets live on disk (`GroupStore`), shared with `kappa groups` and
/// `kappa consume --group`.
/// Owned by the broker's loop.
struct GroupCoordinator {
    typealias Machine = GroupStateMachine<GroupWaiter>

    let initialDelayNanos: Int64
    let sessionTimeoutNanos: ClosedRange<Int64>
    var groups: [String: Machine] = [:]
    var timers: [String: Scheduled<Void>] = [:]

    init(options: KafkaServerOptions) {
        initialDelayNanos = options.groupInitialRebalanceDelayMillis * 1_000_000
        sessionTimeoutNanos = (options.groupSessionTimeoutMillis.lowerBound * 1_000_000)...(options.groupSessionTimeoutMillis.upperBound * 1_000_000)
    }

    /// Kafka's member ids: the client id, a dash, a random UUID.
    static func newMemberId(_ clientId: String) -> String {
        (clientId.isEmpty ? "member" : clientId) + "-" + UUID().uuidString.lowercased()
    }

    mutating func machine(_ group: String) -> Machine {
        if let m = groups[group] { return m }
        let m = Machine(groupId: group, initialDelayNanos: initialDelayNanos, sessionTimeoutNanos: sessionTimeoutNanos,
                        newMemberId: GroupCoordinator.newMemberId)
        groups[group] = m
        return m
    }

    mutating func shutdown(_ broker: Broker) {
        for (name, var m) in groups {
            broker.perform(m.abandonWaits())
            groups[name] = m
        }
        for (_, t) in timers { t.cancel() }
        timers.removeAll()
    }
}

extension Broker {
    static func nowNanos() -> Int64 { Int64(NIODeadline.now().uptimeNanoseconds) }

    /// Runs `body` on group `name`'s machine, performs what it returns, and re-arms the
    /// group's timer for its next deadline.
    func withGroup<T>(_ name: String, _ body: (inout GroupCoordinator.Machine, Int64) -> (T, [GroupCoordinator.Machine.Action])) -> T {
        var m = groups.machine(name)
        let (result, actions) = body(&m, Broker.nowNanos())
        // An empty group holds nothing worth keeping (its offsets are on disk): dropping
        // it bounds memory by the groups in use, however many names clients invent.
        groups.groups[name] = m.state == .empty && m.pendingMembers.isEmpty ? nil : m
        perform(actions)
        armTimer(name)
        return result
    }

    private func armTimer(_ name: String) {
        groups.timers.removeValue(forKey: name)?.cancel()
        guard let deadline = groups.groups[name]?.nextDeadline else { return }
        let delay = max(0, deadline - Broker.nowNanos())
        groups.timers[name] = loop.scheduleTask(in: .nanoseconds(delay)) { [self] in
            groups.timers[name] = nil
            withGroup(name) { m, now in ((), m.tick(now: now)) }
        }
    }

    func perform(_ actions: [GroupCoordinator.Machine.Action]) {
        for a in actions {
            switch a {
            case .join(let w, let result): w.responder.send(encodeJoinGroup(w.header, result))
            case .sync(let w, let result): w.responder.send(encodeSyncGroup(w.header, result))
            }
        }
    }
}

/// Caps on what one user's jobs may spend on priced model calls (`limits.budget`): per UTC day and
/// per UTC month, in US dollars. A spend is counted on the day its job was created.
public struct SpendLimits: Sendable, Hashable {
    public var perUserDaily: Money?
    public var perUserMonthly: Money?

    public init(perUserDaily: Money? = nil, perUserMonthly: Money? = nil) {
        self.perUserDaily = perUserDaily
        self.perUserMonthly = perUserMonthly
    }

    public var isEmpty: Bool { perUserDaily == nil && perUserMonthly == nil }

    /// Why a user who has spent `day` and `month` (in-flight calls included) may not start another
    /// paid call, or nil when they may: a cap reached is a cap spent.
    public func refusal(day: Money, month: Money) -> String? {
        if let cap = perUserDaily, day >= cap {
            return "the user's spend today ($\(day)) has reached limits.budget.per_user_daily ($\(cap)); it resets at 00:00 UTC"
        }
        if let cap = perUserMonthly, month >= cap {
            return "the user's spend this month ($\(month)) has reached limits.budget.per_user_monthly ($\(cap)); it resets on the 1st, 00:00 UTC"
        }
        return nil
    }
}

"""The ``day-bits`` of a customer-day (wit/rules.wit): what a ``DayFilter`` tests, and the
``bits`` column of a batch. Bit i is the i-th flag of the WIT ``day-bits``."""

NON_RESIDENTIAL = 1 << 0
SUSPENDED = 1 << 1
METERED = 1 << 2
LOW_INCOME = 1 << 3
HAS_USABLE_AREA = 1 << 4
HAS_CEILING_HEIGHT = 1 << 5
HAS_HEAT = 1 << 6
HAS_INDOOR_TEMPERATURE = 1 << 7
HAS_ARREARS_SINCE = 1 << 8
HAS_SEASON = 1 << 9
SEASON_CHARGED = 1 << 10

"""Every component id of the dashboard, as constants (kebab-case, page-prefixed).

Pages and tests import ids from here; no page writes an id as a string literal.
"""

# ---------------------------------------------------------------- shell (every page)
URL = "app-url"
NAV = "app-nav"
NAV_TOGGLER = "app-nav-toggler"
NAV_STATUS = "app-nav-status"
PAGE_CONTAINER = "app-page-container"

# ---------------------------------------------------------------- overview (/)
OVERVIEW_KPIS = "overview-kpis"
OVERVIEW_SIZES = "overview-sizes-graph"
OVERVIEW_SPEND_SHARE = "overview-spend-share-graph"
OVERVIEW_PERSONAS = "overview-personas"
OVERVIEW_SOURCE = "overview-source"
OVERVIEW_CLEANING = "overview-cleaning-table"
OVERVIEW_DOWNLOAD_BTN = "overview-download-membership-btn"
OVERVIEW_DOWNLOAD = "overview-download-membership"

# ---------------------------------------------------------------- profiles (/profiles)
PROFILES_SEGMENT = "profiles-segment-dropdown"
PROFILES_HEATMAP = "profiles-zscore-heatmap"
PROFILES_FEATURE = "profiles-feature-dropdown"
PROFILES_DISTRIBUTION = "profiles-distribution-graph"
PROFILES_PRODUCT_MIX = "profiles-product-mix-graph"
PROFILES_CHANNEL_MIX = "profiles-channel-mix-graph"
PROFILES_CAMPAIGNS = "profiles-campaigns-graph"
PROFILES_ECONOMICS = "profiles-economics-table"
PROFILES_RECOMMENDATIONS = "profiles-recommendations"
PROFILES_SUMMARY = "profiles-segment-summary"
PROFILES_RENAME_INPUT = "profiles-rename-input"
PROFILES_RENAME_BTN = "profiles-rename-btn"
PROFILES_RENAME_FEEDBACK = "profiles-rename-feedback"
PROFILES_DOWNLOAD_BTN = "profiles-download-btn"
PROFILES_DOWNLOAD = "profiles-download"

# ---------------------------------------------------------------- compare (/compare)
COMPARE_A = "compare-a-dropdown"
COMPARE_B = "compare-b-dropdown"
COMPARE_KPIS = "compare-kpis"
COMPARE_DIFF = "compare-difference-graph"
COMPARE_FEATURE = "compare-feature-dropdown"
COMPARE_DISTRIBUTION = "compare-distribution-graph"
COMPARE_PRODUCT_MIX = "compare-product-mix-graph"
COMPARE_CHANNEL_MIX = "compare-channel-mix-graph"
COMPARE_TABLE = "compare-difference-table"

# ---------------------------------------------------------------- explorer (/explorer)
EXPLORER_MAP = "explorer-map-graph"
EXPLORER_DIMENSIONS = "explorer-dimensions-radio"
EXPLORER_EDUCATION = "explorer-education-dropdown"
EXPLORER_MARITAL = "explorer-marital-dropdown"
EXPLORER_AGE = "explorer-age-slider"
EXPLORER_INCOME = "explorer-income-slider"
EXPLORER_COUNT = "explorer-count"
EXPLORER_SELECTION = "explorer-selection-summary"
EXPLORER_DOWNLOAD_BTN = "explorer-download-btn"
EXPLORER_DOWNLOAD = "explorer-download"
EXPLORER_LOADINGS = "explorer-loadings-check"

# ---------------------------------------------------------------- diagnostics (/diagnostics)
DIAG_K_RANGE = "diagnostics-k-range-slider"
DIAG_RUN = "diagnostics-run-btn"
DIAG_CANCEL = "diagnostics-cancel-btn"
DIAG_PROGRESS = "diagnostics-progress"
DIAG_STORE = "diagnostics-sweep-store"
DIAG_METRICS = "diagnostics-metrics-graph"
DIAG_RECOMMENDATION = "diagnostics-recommendation"
DIAG_SILHOUETTE = "diagnostics-silhouette-graph"
DIAG_TABLE = "diagnostics-metrics-table"

"""Static vocabulary of the synthetic funnel: names, firmographics, campaigns, rep personas.

The effect sizes here define the hidden ground truth: a lead's true conversion log-odds is
the sum of these terms (see ``funnel.fit_logit`` and ``funnel.behaviour_logit``). They are
deliberately moderate so a model has something to find but cannot be perfect.
"""

from __future__ import annotations

FIRST_NAMES = (
    "Dana", "Alex", "Sam", "Jordan", "Priya", "Wei", "Fatima", "Lukas", "Sofia", "Mateo",
    "Aisha", "Kenji", "Olga", "Tomás", "Chloé", "Ravi", "Emma", "Noah", "Liam", "Mia",
    "Hannah", "Yusuf", "Zoë", "Björn", "Ingrid", "Carlos", "Lucía", "Mei", "Arjun", "Grace",
    "Oliver", "Amelia", "Ethan", "Isabel", "Jonas", "Léa", "Marco", "Nadia", "Omar", "Paula",
    "Quinn", "Rosa", "Stefan", "Tara", "Umar", "Vera", "Wanda", "Xavier", "Yara", "Zane",
    "Hiro", "Sven", "Anika", "Diego", "Elena", "Farah", "Gabriel", "Helga", "Ivan", "Julia",
)
LAST_NAMES = (
    "Whitfield", "Nguyen", "Okafor", "Schmidt", "Garcia", "Kowalski", "Tanaka", "Patel",
    "Rossi", "Müller", "Johansson", "Haddad", "Silva", "Kim", "Novak", "Dubois", "O'Brien",
    "Smith", "Chen", "Ivanova", "Fernández", "Andersen", "Mbeki", "Yilmaz", "Costa", "Larsen",
    "Moreau", "Sato", "Cohen", "Bianchi", "Walsh", "Hughes", "Singh", "Ahmed", "Lopez",
    "Martin", "Brown", "Wilson", "Taylor", "Clarke", "Weber", "Fischer", "Nakamura", "Park",
    "Reyes", "Morales", "Lindqvist", "Horvath", "Popescu", "Dimitrov", "Santos", "Ortiz",
    "Baker", "Hayes", "Foster", "Reed", "Ward", "Murphy", "Kelly", "Price",
)

COMPANY_HEADS = (
    "Northwind", "Bluefin", "Crescent", "Ironbridge", "Silverline", "Redwood", "Quantum",
    "Brightpath", "Clearwater", "Summit", "Harbor", "Evergreen", "Polaris", "Granite", "Beacon",
    "Cobalt", "Meridian", "Falcon", "Orchid", "Pioneer", "Lumen", "Atlas", "Vertex", "Nimbus",
    "Keystone", "Horizon", "Sterling", "Aurora", "Cascade", "Juniper", "Maple", "Obsidian",
    "Praxis", "Riverbend", "Sequoia", "Tidewater", "Vanguard", "Willow", "Zenith", "Emberly",
)
COMPANY_CORES = (
    "Analytics", "Health", "Labs", "Systems", "Logistics", "Capital", "Foods", "Retail",
    "Robotics", "Learning", "Software", "Networks", "Dynamics", "Works", "Energy", "Bio",
    "Payments", "Cloud", "Data", "Manufacturing", "Media", "Security", "Apparel", "Clinics",
)
COMPANY_SUFFIXES = ("", "", "", " Group", " Inc", " GmbH", " Ltd", " Co", " AG", " SA")
TLDS = (".com", ".com", ".com", ".io", ".co", ".de", ".co.uk", ".net", ".ai", ".com.br")

SIZE_BANDS = ("1-10", "11-50", "51-200", "201-1000", "1001-5000", "5001+")
SIZE_WEIGHTS = (0.16, 0.26, 0.25, 0.18, 0.09, 0.06)
SIZE_EFFECT = {
    "1-10": -0.9, "11-50": -0.4, "51-200": 0.2, "201-1000": 0.5, "1001-5000": 0.4, "5001+": 0.1,
}

INDUSTRIES = ("SaaS", "FinTech", "Healthcare", "Retail", "Manufacturing", "Education")
INDUSTRY_WEIGHTS = (0.28, 0.15, 0.16, 0.15, 0.14, 0.12)
INDUSTRY_EFFECT = {
    "SaaS": 0.5, "FinTech": 0.3, "Healthcare": -0.1, "Retail": -0.3, "Manufacturing": -0.2,
    "Education": -0.6,
}

REGIONS = ("NA-West", "NA-East", "EMEA", "APAC", "LATAM")
REGION_WEIGHTS = (0.24, 0.26, 0.28, 0.13, 0.09)
REGION_EFFECT = {"NA-West": 0.2, "NA-East": 0.15, "EMEA": 0.0, "APAC": -0.2, "LATAM": -0.3}
PHONE_PREFIX = {
    "NA-West": "+1 415 555 ", "NA-East": "+1 212 555 ", "EMEA": "+44 20 7946 ",
    "APAC": "+61 2 9876 ", "LATAM": "+55 11 4004 ",
}

TECH = (
    "React", "Node.js", "AWS", "GCP", "Azure", "Kubernetes", "Snowflake", "Salesforce",
    "HubSpot", "Shopify", "Python", "Java", ".NET", "PostgreSQL", "Kafka", "Segment",
)
# Stacks that fit the (imaginary) product: a mild positive term in the true log-odds.
TECH_FIT = frozenset({"Kubernetes", "Kafka", "Snowflake", "AWS"})

# (title, seniority effect on log-odds)
TITLES = (
    ("CEO", 0.3), ("CTO", 0.45), ("CFO", 0.1), ("VP Engineering", 0.5), ("VP Marketing", 0.35),
    ("VP Sales", 0.3), ("Head of Data", 0.5), ("Director of IT", 0.4),
    ("Director of Operations", 0.3),
    ("Engineering Manager", 0.15), ("Marketing Manager", 0.05), ("Product Manager", 0.1),
    ("Data Engineer", -0.1), ("Software Engineer", -0.25), ("Analyst", -0.3),
    ("Consultant", -0.4), ("Student", -1.3), ("Intern", -1.1),
)
TITLE_WEIGHTS = (3, 3, 1, 5, 3, 2, 4, 4, 3, 7, 7, 6, 6, 9, 8, 4, 3, 2)

# (slug, utm_source, utm_medium, quality log-odds shift, volume weight, trigger action)
CAMPAIGNS = (
    ("webinar-b", "linkedin", "paid_social", 0.6, 1.0, "attended_webinar_B"),
    ("webinar-a", "linkedin", "paid_social", 0.2, 1.1, "attended_webinar_A"),
    ("search-brand", "google", "cpc", 0.8, 0.9, "searched_brand"),
    ("search-generic", "google", "cpc", -0.2, 1.6, "clicked_search_ad"),
    ("ebook-ai", "facebook", "paid_social", -0.9, 2.0, "downloaded_ebook_ai"),
    ("event-summit", "event", "field", 0.4, 0.6, "visited_booth_summit"),
    ("partner-cloud", "partner", "referral", 0.5, 0.5, "partner_referral"),
    ("newsletter", "newsletter", "email", 0.0, 0.9, "clicked_newsletter"),
    ("display-retarget", "display", "programmatic", -0.6, 1.4, "clicked_display_ad"),
)
EXTRA_TRIGGERS = (
    "downloaded_whitepaper_A", "viewed_pricing_page", "visited_case_study", "started_free_trial",
    "submitted_contact_form", "watched_product_tour",
)

# (name, home regions, median first touch minutes, diligence, disqualifications without reason).
# The simulated team is the routing configuration's reps; these habits go to the rep whose id
# is "rep-<name>" (see staff.make_reps). Reps work the hours their routing entry gives them.
REP_PERSONAS = (
    ("amy", ("NA-West",), 25.0, 0.95, 0.02),
    ("ben", ("NA-West", "LATAM"), 300.0, 0.60, 0.35),
    ("carla", ("NA-East",), 60.0, 0.90, 0.05),
    ("dev", ("NA-East", "LATAM"), 150.0, 0.75, 0.15),
    ("elif", ("EMEA",), 40.0, 0.92, 0.04),
    ("farid", ("EMEA",), 480.0, 0.55, 0.40),
    ("grace", ("APAC",), 90.0, 0.85, 0.08),
    ("hugo", ("EMEA", "APAC"), 120.0, 0.80, 0.10),
)
# Standard-time offsets, for local office hours of form fills.
UTC_OFFSET_H = {"NA-West": -8, "NA-East": -5, "LATAM": -3, "EMEA": 1, "APAC": 8}

DQ_REASONS = (
    "no_budget_for_6_months", "not_decision_maker", "competitor_customer", "no_project",
    "wrong_region", "student_or_job_seeker", "too_small", "bad_contact_data",
)
DQ_NOTES = (
    "Good conversation, but no budget until next fiscal year. Re-engage in Q4.",
    "Contact is an individual contributor; no buying authority. Asked for intro to manager.",
    "Locked into a three-year contract with a competitor.",
    "Was researching for a school project.",
    "Company too small for our minimum tier.",
    "Phone number invalid and email bounced.",
    "No active initiative; downloaded content out of curiosity.",
)
LOST_NOTES = (
    "Chose a competitor on price.", "Project postponed indefinitely.",
    "Went with an in-house build.", "Security review failed on data residency.",
)
WON_NOTES = ("Signed annual contract.", "Closed after successful pilot.", "Signed 2-year deal.")
UNKNOWN_STATUSES = ("Maybe Later", "Pending Review", "On Hold - call back", "Nurture??")

//! The synthetic company behind `roster demo`: Kestrel Labs, a Berlin software company on
//! Personio, and its US subsidiary, whose HRIS is read through Merge.
//!
//! Everything is derived from `(seed, people, today)` with `fastrand::Rng::with_seed`, so the
//! same arguments always give byte-identical records. Dates are relative to `today` (the
//! company's calendar date): pre-hires start in the coming weeks, leavers left in the past
//! year, probation ends six months after a recent start.
//!
//! Records are built exactly as each vendor's API returns them (see the comments in
//! `providers/personio.yaml` and `providers/merge.yaml` for the shapes):
//!
//! - Personio: `{type: Employee, attributes: {...}}`, every attribute wrapped as
//!   `{label, value, type, universal_id}`; the supervisor a nested short employee;
//!   department, office, subcompany and team objects; dates as local midnight with the
//!   Europe/Berlin offset of that day (`+01:00` in winter, `+02:00` in summer); the date of
//!   birth in the custom attribute [`PERSONIO_BIRTHDAY_ATTRIBUTE`], as a plain date like the
//!   vendor's custom-date example (`dynamic_33400: 2021-01-01`).
//! - Merge: the Employee common model with manager, team, work_location, company,
//!   employments and groups expanded (what the built-in spec's `expand` asks for); dates as
//!   `YYYY-MM-DDT00:00:00Z`.
//!
//! ## Composition (people = 250; every count scales with `people`)
//!
//! Personio, exactly `people` records (from 40 people on; smaller companies are a CEO,
//! up to three department heads and active employees under them):
//! - a CEO without supervisor; 7 department heads; 3 directors (Engineering 2, Sales 1);
//!   19 team leads; members under the team leads: 5 levels in Engineering and Sales,
//!   4 elsewhere;
//! - 12 `inactive` leavers (termination date in the past year);
//! - 8 `onboarding` pre-hires starting in the next 1–21 days, one of them external;
//! - 15 more `external` contractors, most with a contract end date in the coming months;
//! - 5 people on `leave`; 3 active people leaving within 45 days (termination date ahead);
//! - 5 working students on fixed-term contracts (20 h);
//! - offices Berlin, Munich, Hamburg; subcompanies Kestrel Labs GmbH and (Customer Success)
//!   Kestrel Labs Services GmbH; one birthday on 29 February.
//!
//! Merge (the US subsidiary Kestrel Labs Inc.), `(people + 2) / 5` records (50 for 250; from
//! 10 records on, smaller ones are a general manager and active employees):
//! - a general manager (no manager: the CEO is not in the US HRIS), 4 heads, members;
//! - 10 people who are also in Personio (seconded from Berlin): the same work email, 8 of
//!   them written with other case or surrounding whitespace; 5 with another job title here;
//! - 3 `PENDING` pre-hires, 4 `INACTIVE` leavers, 3 CONTRACTOR + 1 FREELANCE, 2 PART_TIME,
//!   1 INTERN; every record has a COST_CENTER group besides its DEPARTMENT group.
//!
//! ## Data problems, on purpose (only with 40 people or more; fixed counts)
//!
//! Personio:
//! 1. An active employee whose email is `null` (created by a payroll import).
//! 2. A pre-hire whose email is `""` (the mailbox does not exist yet).
//! 3. An employee whose supervisor id does not exist (a team lead deleted from Personio;
//!    the nested supervisor still names them, with an email nobody else has).
//! 4. Two active records with the same email: a contractor converted to an employee whose
//!    old `external` record was never deactivated.
//!
//! Merge:
//! 5. A record whose manager is not in the listing (deleted from the US HRIS).
//!
//! Not a problem but vendor behaviour the mapping handles: one Merge record marked
//! `remote_was_deleted: true` (still listed by Merge; the built-in mapping filters it out).

use std::collections::HashMap;

use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::{Span, ToSpan as _};
use serde_json::{Value, json};

use super::{names, wire};

/// The Personio custom attribute that holds the date of birth in the demo tenant.
pub const PERSONIO_BIRTHDAY_ATTRIBUTE: &str = "dynamic_7021350";
/// The Personio tenant's email domain.
pub const PERSONIO_DOMAIN: &str = "kestrel-labs.example";
/// The US subsidiary's email domain.
pub const MERGE_DOMAIN: &str = "us.kestrel-labs.example";

/// Records exactly as each vendor's API returns them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Dataset {
    /// Personio `GET /company/employees` records (`data[*]`), in listing order.
    pub personio: Vec<Value>,
    /// Merge `GET /employees` records (`results[*]`), expanded, in listing order.
    pub merge: Vec<Value>,
}

impl Dataset {
    /// Deterministic synthetic company: `people` is the size of the Personio listing; Merge
    /// holds about a fifth as many. Relative dates are computed from `today` (the company's
    /// calendar date), so pre-hires start in the coming weeks, and so on. The same
    /// `(seed, people, today)` always gives identical output.
    pub fn generate(seed: u64, people: usize, today: Date) -> Dataset {
        struct Values(Dataset);
        impl Sink for Values {
            fn personio(&mut self, record: &wire::Employee<'_>) {
                self.0.personio.push(to_value(record));
            }
            fn merge(&mut self, record: &wire::MergeEmployee<'_>, _: MergeMeta) {
                self.0.merge.push(to_value(record));
            }
        }
        let mut out = Values(Dataset::default());
        build(seed, people, today, &mut out);
        out.0
    }

    /// The Personio record with this id.
    pub fn personio_record(&self, id: u64) -> Option<&Value> {
        self.personio.iter().find(|r| personio_id(r) == Some(id))
    }

    /// The Personio record with this id, to change.
    pub fn personio_record_mut(&mut self, id: u64) -> Option<&mut Value> {
        self.personio
            .iter_mut()
            .find(|r| personio_id(r) == Some(id))
    }

    /// Sets `attributes.<attribute>.value` of the Personio record `id` (adding a wrapped
    /// attribute if the record has none). False when there is no such record.
    pub fn set_personio_attribute(&mut self, id: u64, attribute: &str, value: Value) -> bool {
        let Some(attrs) = self
            .personio_record_mut(id)
            .and_then(|r| r.get_mut("attributes"))
            .and_then(Value::as_object_mut)
        else {
            return false;
        };
        match attrs.get_mut(attribute).and_then(Value::as_object_mut) {
            Some(a) => {
                a.insert("value".into(), value);
            }
            None => {
                attrs.insert(
                    attribute.to_string(),
                    attr(attribute, value, "standard", Value::Null),
                );
            }
        }
        true
    }

    /// The Merge record with this (Merge) id, to change.
    pub fn merge_record_mut(&mut self, id: &str) -> Option<&mut Value> {
        self.merge
            .iter_mut()
            .find(|r| r.get("id").and_then(Value::as_str) == Some(id))
    }

    /// A one-paragraph description of what is in the dataset, for `roster demo`.
    pub fn describe(&self) -> String {
        let mut p: HashMap<&str, usize> = HashMap::new();
        let mut external = 0;
        for r in &self.personio {
            let a = &r["attributes"];
            *p.entry(a["status"]["value"].as_str().unwrap_or("?"))
                .or_default() += 1;
            if a["employment_type"]["value"] == "external" {
                external += 1;
            }
        }
        let mut m: HashMap<&str, usize> = HashMap::new();
        let mut contractors = 0;
        for r in &self.merge {
            *m.entry(r["employment_status"].as_str().unwrap_or("?"))
                .or_default() += 1;
            if matches!(
                r["employments"][0]["employment_type"].as_str(),
                Some("CONTRACTOR" | "FREELANCE")
            ) {
                contractors += 1;
            }
        }
        let n = |h: &HashMap<&str, usize>, k: &str| h.get(k).copied().unwrap_or(0);
        format!(
            "Personio (Kestrel Labs, Berlin): {} employees: {} active, {} onboarding, {} on leave, {} inactive; {} external. \
             Merge (Kestrel Labs Inc., US): {} employees: {} ACTIVE, {} PENDING, {} INACTIVE; {} contractors.",
            self.personio.len(),
            n(&p, "active"),
            n(&p, "onboarding"),
            n(&p, "leave"),
            n(&p, "inactive"),
            external,
            self.merge.len(),
            n(&m, "ACTIVE"),
            n(&m, "PENDING"),
            n(&m, "INACTIVE"),
            contractors,
        )
    }
}

fn to_value(record: &impl serde::Serialize) -> Value {
    serde_json::to_value(record).expect("demo records serialize")
}

/// Where [`build`] hands each record, in listing order (all of Personio, then all of Merge).
pub(super) trait Sink {
    /// A Personio employee.
    fn personio(&mut self, record: &wire::Employee<'_>);
    /// A Merge employee, with what the server indexes.
    fn merge(&mut self, record: &wire::MergeEmployee<'_>, meta: MergeMeta);
}

/// What the server reads out of a Merge record once, to filter and collapse it.
pub(super) struct MergeMeta {
    /// `modified_at`.
    pub modified_at: Option<jiff::Timestamp>,
    /// `employment_status`.
    pub status: &'static str,
    /// The fields holding expanded objects.
    pub expanded: Vec<&'static str>,
}

/// Builds the company of [`Dataset::generate`], record by record, so a caller can keep the
/// records compact: a 100,000-person company as `serde_json::Value`s takes about 4 GB.
pub(super) fn build(seed: u64, people: usize, today: Date, sink: &mut impl Sink) {
    if people == 0 {
        return;
    }
    let mut g = Gen::new(seed, today);
    let company = g.personio(people);
    for &i in &company.order {
        sink.personio(&g.personio_record(
            &company.people[i],
            &company.people,
            company.ghost.as_ref(),
        ));
    }
    let mut g2 = Gen::new(seed ^ 0x6d65_7267_655f_7573, today);
    let us = g2.merge((people + 2) / 5, &company);
    for &i in &us.order {
        let (record, meta) = us.record(i);
        sink.merge(&record, meta);
    }
}

/// A Personio record's id (`attributes.id.value`).
pub fn personio_id(record: &Value) -> Option<u64> {
    record["attributes"]["id"]["value"].as_u64()
}

// ---------------------------------------------------------------------------------------
// The org chart.

struct TeamDef {
    name: &'static str,
    id: u64,
    weight: u32,
    lead: &'static str,
    titles: &'static [&'static str],
}

struct DeptDef {
    name: &'static str,
    id: u64,
    head: &'static str,
    teams: &'static [TeamDef],
    /// Directors between the head and some team leads: title and the teams they run.
    directors: &'static [(&'static str, &'static [usize])],
    /// Weights of Berlin, Munich, Hamburg.
    offices: [u32; 3],
    /// Index into [`SUBCOMPANIES`].
    subcompany: usize,
}

const MANAGEMENT: (&str, u64) = ("Management", 281_500);
const OFFICES: [(&str, u64); 3] = [
    ("Berlin", 131_001),
    ("Munich", 131_002),
    ("Hamburg", 131_003),
];
const SUBCOMPANIES: [(&str, u64); 2] = [
    ("Kestrel Labs GmbH", 7033),
    ("Kestrel Labs Services GmbH", 7034),
];

const DEPTS: &[DeptDef] = &[
    DeptDef {
        name: "Engineering",
        id: 281_501,
        head: "CTO & Co-Founder",
        teams: &[
            TeamDef {
                name: "Platform",
                id: 59_001,
                weight: 8,
                lead: "Engineering Manager, Platform",
                titles: &[
                    "Software Engineer",
                    "Senior Software Engineer",
                    "Site Reliability Engineer",
                    "Staff Engineer",
                ],
            },
            TeamDef {
                name: "Payments",
                id: 59_002,
                weight: 7,
                lead: "Engineering Manager, Payments",
                titles: &[
                    "Software Engineer",
                    "Senior Software Engineer",
                    "Backend Engineer",
                ],
            },
            TeamDef {
                name: "Mobile",
                id: 59_003,
                weight: 6,
                lead: "Engineering Manager, Mobile",
                titles: &["iOS Engineer", "Android Engineer", "Senior Mobile Engineer"],
            },
            TeamDef {
                name: "Web",
                id: 59_004,
                weight: 6,
                lead: "Engineering Manager, Web",
                titles: &[
                    "Frontend Engineer",
                    "Senior Frontend Engineer",
                    "Full-Stack Engineer",
                ],
            },
            TeamDef {
                name: "Data",
                id: 59_005,
                weight: 5,
                lead: "Data Engineering Lead",
                titles: &["Data Engineer", "Analytics Engineer", "Data Scientist"],
            },
            TeamDef {
                name: "Security & IT",
                id: 59_006,
                weight: 3,
                lead: "Head of Security",
                titles: &["Security Engineer", "IT Administrator"],
            },
        ],
        directors: &[
            ("Director of Engineering, Platform", &[0, 4, 5]),
            ("Director of Engineering, Product", &[1, 2, 3]),
        ],
        offices: [7, 2, 1],
        subcompany: 0,
    },
    DeptDef {
        name: "Product & Design",
        id: 281_502,
        head: "VP Product",
        teams: &[
            TeamDef {
                name: "Product Management",
                id: 59_007,
                weight: 4,
                lead: "Group Product Manager",
                titles: &["Product Manager", "Senior Product Manager"],
            },
            TeamDef {
                name: "Design",
                id: 59_008,
                weight: 4,
                lead: "Design Lead",
                titles: &[
                    "Product Designer",
                    "Senior Product Designer",
                    "UX Researcher",
                ],
            },
        ],
        directors: &[],
        offices: [8, 2, 0],
        subcompany: 0,
    },
    DeptDef {
        name: "Sales",
        id: 281_503,
        head: "VP Sales",
        teams: &[
            TeamDef {
                name: "Enterprise Sales",
                id: 59_009,
                weight: 6,
                lead: "Head of Enterprise Sales",
                titles: &[
                    "Account Executive",
                    "Senior Account Executive",
                    "Solutions Engineer",
                ],
            },
            TeamDef {
                name: "SMB Sales",
                id: 59_010,
                weight: 6,
                lead: "Team Lead SMB Sales",
                titles: &["Sales Development Representative", "Account Executive"],
            },
            TeamDef {
                name: "Sales Operations",
                id: 59_011,
                weight: 2,
                lead: "Sales Operations Lead",
                titles: &["Sales Operations Analyst", "Deal Desk Specialist"],
            },
        ],
        directors: &[("Sales Director DACH", &[0, 1])],
        offices: [3, 5, 2],
        subcompany: 0,
    },
    DeptDef {
        name: "Marketing",
        id: 281_504,
        head: "VP Marketing",
        teams: &[
            TeamDef {
                name: "Growth",
                id: 59_012,
                weight: 3,
                lead: "Head of Growth",
                titles: &["Performance Marketing Manager", "Growth Analyst"],
            },
            TeamDef {
                name: "Brand & Content",
                id: 59_013,
                weight: 3,
                lead: "Head of Brand",
                titles: &["Content Marketing Manager", "Copywriter", "Brand Designer"],
            },
        ],
        directors: &[],
        offices: [6, 1, 3],
        subcompany: 0,
    },
    DeptDef {
        name: "Customer Success",
        id: 281_505,
        head: "VP Customer Success",
        teams: &[
            TeamDef {
                name: "Support",
                id: 59_014,
                weight: 6,
                lead: "Support Team Lead",
                titles: &["Customer Support Specialist", "Technical Support Engineer"],
            },
            TeamDef {
                name: "Onboarding",
                id: 59_015,
                weight: 3,
                lead: "Onboarding Lead",
                titles: &["Implementation Manager", "Customer Success Manager"],
            },
        ],
        directors: &[],
        offices: [2, 1, 7],
        subcompany: 1,
    },
    DeptDef {
        name: "People & Workplace",
        id: 281_506,
        head: "Head of People",
        teams: &[
            TeamDef {
                name: "People",
                id: 59_016,
                weight: 3,
                lead: "People Partner Lead",
                titles: &["People Partner", "Recruiter", "Talent Sourcer"],
            },
            TeamDef {
                name: "Workplace",
                id: 59_017,
                weight: 2,
                lead: "Workplace Lead",
                titles: &["Office Manager", "Workplace Coordinator"],
            },
        ],
        directors: &[],
        offices: [6, 2, 2],
        subcompany: 0,
    },
    DeptDef {
        name: "Finance & Legal",
        id: 281_507,
        head: "CFO",
        teams: &[
            TeamDef {
                name: "Finance",
                id: 59_018,
                weight: 3,
                lead: "Finance Lead",
                titles: &["Accountant", "FP&A Analyst", "Payroll Specialist"],
            },
            TeamDef {
                name: "Legal",
                id: 59_019,
                weight: 1,
                lead: "General Counsel",
                titles: &["Legal Counsel", "Paralegal"],
            },
        ],
        directors: &[],
        offices: [9, 1, 0],
        subcompany: 0,
    },
];

/// Departments whose people may be seconded to the US subsidiary (Engineering, Sales,
/// Marketing, Customer Success), with the US team index they join.
const US_SECONDMENT: &[(usize, usize)] = &[(0, 3), (2, 0), (3, 4), (4, 2)];

// ---------------------------------------------------------------------------------------
// Personio.

#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Ceo,
    Head,
    Director,
    Lead,
    Member,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Sup {
    None,
    Person(usize),
    /// A supervisor id that is not in the listing (data problem 3).
    Ghost,
}

#[derive(Clone)]
struct Person {
    first: &'static str,
    last: &'static str,
    gender: &'static str,
    preferred: Option<&'static str>,
    /// `None` is JSON null; `Some("")` an empty string.
    email: Option<String>,
    /// `None`: the Management department.
    dept: Option<usize>,
    team: Option<usize>,
    office: usize,
    role: Role,
    position: String,
    sup: Sup,
    status: &'static str,
    external: bool,
    hours: u32,
    hire: Date,
    contract_end: Option<Date>,
    termination: Option<Date>,
    last_day: Option<Date>,
    termination_type: Option<&'static str>,
    termination_reason: Option<&'static str>,
    probation_end: Option<Date>,
    birth: Date,
    created: DateTime,
    modified: DateTime,
    academic_title: Option<&'static str>,
    id: u64,
}

/// The Personio side, kept for building the Merge side.
struct Company {
    people: Vec<Person>,
    /// Listing order (by id).
    order: Vec<usize>,
    /// The deleted supervisor of data problem 3: id, first and last name, email.
    ghost: Option<Ghost>,
}

type Ghost = (u64, &'static str, &'static str, String);

struct Gen {
    rng: fastrand::Rng,
    today: Date,
    tz: TimeZone,
    emails: HashMap<String, u32>,
}

impl Gen {
    fn new(seed: u64, today: Date) -> Gen {
        Gen {
            rng: fastrand::Rng::with_seed(seed),
            today,
            tz: TimeZone::get("Europe/Berlin").expect("the bundled tz database has Europe/Berlin"),
            emails: HashMap::new(),
        }
    }

    fn days(&self, n: i64) -> Date {
        self.today.checked_add(n.days()).unwrap_or(self.today)
    }

    /// A date between `from` and `to` days from today (inclusive).
    fn day_between(&mut self, from: i64, to: i64) -> Date {
        let n = self.rng.i64(from.min(to)..=to.max(from));
        self.days(n)
    }

    /// A working-hours time on `d`.
    fn time_on(&mut self, d: Date) -> DateTime {
        d.at(
            self.rng.i8(8..=18),
            self.rng.i8(0..=59),
            self.rng.i8(0..=59),
            0,
        )
    }

    fn weighted(&mut self, weights: &[u32]) -> usize {
        let total: u32 = weights.iter().sum();
        if total == 0 {
            return 0;
        }
        let mut x = self.rng.u32(0..total);
        for (i, w) in weights.iter().enumerate() {
            if x < *w {
                return i;
            }
            x -= w;
        }
        weights.len() - 1
    }

    /// A unique email `first.last@domain` (`first.last2@...` on a clash).
    fn email(&mut self, first: &str, last: &str, domain: &str) -> String {
        let base = format!("{}.{}", names::email_part(first), names::email_part(last));
        let n = self.emails.entry(format!("{base}@{domain}")).or_insert(0);
        *n += 1;
        if *n == 1 {
            format!("{base}@{domain}")
        } else {
            let numbered = format!("{base}{n}@{domain}");
            // Reserve the numbered form too, so it cannot clash later.
            self.emails.insert(numbered.clone(), 1);
            numbered
        }
    }

    fn birth(&mut self, min_age: i16, max_age: i16) -> Date {
        let age = self.rng.i16(min_age..=max_age);
        let d = self
            .today
            .checked_sub(Span::new().years(age))
            .unwrap_or(self.today);
        d.checked_sub(self.rng.i64(0..365).days()).unwrap_or(d)
    }

    fn person(&mut self, role: Role, dept: Option<usize>, team: Option<usize>) -> Person {
        let (first, gender) = names::EU_FIRST[self.rng.usize(..names::EU_FIRST.len())];
        let last = names::EU_LAST[self.rng.usize(..names::EU_LAST.len())];
        let preferred = if self.rng.u8(..100) < 25 {
            names::NICKNAMES
                .iter()
                .find(|(f, _)| *f == first)
                .map(|(_, n)| *n)
        } else {
            None
        };
        let email = Some(self.email(first, last, PERSONIO_DOMAIN));
        let office = match dept {
            Some(d) => self.weighted(&DEPTS[d].offices),
            None => 0,
        };
        let position = match (role, dept, team) {
            (Role::Ceo, ..) => "CEO & Co-Founder".to_string(),
            (Role::Head, Some(d), _) => DEPTS[d].head.to_string(),
            (Role::Lead, Some(d), Some(t)) => DEPTS[d].teams[t].lead.to_string(),
            (Role::Member, Some(d), Some(t)) => {
                let titles = DEPTS[d].teams[t].titles;
                titles[self.rng.usize(..titles.len())].to_string()
            }
            _ => String::new(), // directors get theirs from the caller
        };
        let birth = self.birth(24, 63);
        let academic_title = (self.rng.u8(..100) < 4).then_some("Dr.");
        Person {
            first,
            last,
            gender,
            preferred,
            email,
            dept,
            team,
            office,
            role,
            position,
            sup: Sup::None,
            status: "active",
            external: false,
            hours: 40,
            hire: self.today,
            contract_end: None,
            termination: None,
            last_day: None,
            termination_type: None,
            termination_reason: None,
            probation_end: None,
            birth,
            created: self.today.at(0, 0, 0, 0),
            modified: self.today.at(0, 0, 0, 0),
            academic_title,
            id: 0,
        }
    }

    fn personio(&mut self, people: usize) -> Company {
        let full = people >= 40;
        let mut ps: Vec<Person> = Vec::with_capacity(people);
        // Founding, and the day the company moved its HR into Personio (a bulk import).
        let founded = -3300i64;
        let imported = -2190i64;

        let mut ceo = self.person(Role::Ceo, None, None);
        ceo.hire = self.days(founded);
        ps.push(ceo);

        // Who leads each (dept, team): the index of its lead, or of whoever stands in.
        let mut team_lead: HashMap<(usize, usize), usize> = HashMap::new();
        let mut heads: Vec<usize> = Vec::new();
        let depts: Vec<usize> = if full {
            (0..DEPTS.len()).collect()
        } else {
            [0, 2, 1]
                .into_iter()
                .take(((people - 1) / 4).min(3))
                .collect()
        };
        for &d in &depts {
            let mut head = self.person(Role::Head, Some(d), None);
            head.sup = Sup::Person(0);
            head.hire = self.day_between(founded, founded + 1500);
            head.office = 0;
            ps.push(head);
            heads.push(ps.len() - 1);
            let head_idx = ps.len() - 1;
            if !full {
                for t in 0..DEPTS[d].teams.len() {
                    team_lead.insert((d, t), head_idx);
                }
                continue;
            }
            let mut director_of: HashMap<usize, usize> = HashMap::new();
            for (title, teams) in DEPTS[d].directors {
                let mut dir = self.person(Role::Director, Some(d), None);
                dir.position = (*title).to_string();
                dir.sup = Sup::Person(head_idx);
                dir.hire = self.day_between(founded + 600, founded + 2200);
                ps.push(dir);
                for t in *teams {
                    director_of.insert(*t, ps.len() - 1);
                }
            }
            for t in 0..DEPTS[d].teams.len() {
                let mut lead = self.person(Role::Lead, Some(d), Some(t));
                lead.sup = Sup::Person(director_of.get(&t).copied().unwrap_or(head_idx));
                lead.hire = self.day_between(founded + 300, -400);
                ps.push(lead);
                team_lead.insert((d, t), ps.len() - 1);
            }
        }

        // Members, by team weight.
        let slots: Vec<(usize, usize)> = depts
            .iter()
            .flat_map(|&d| (0..DEPTS[d].teams.len()).map(move |t| (d, t)))
            .collect();
        let weights: Vec<u32> = slots
            .iter()
            .map(|&(d, t)| DEPTS[d].teams[t].weight)
            .collect();
        // With problems on, one record is the duplicate-email contractor added below.
        let extra = usize::from(full);
        let first_member = ps.len();
        while ps.len() + extra < people {
            let (d, t) = if slots.is_empty() {
                (0, 0)
            } else {
                slots[self.weighted(&weights)]
            };
            let mut m = self.person(Role::Member, Some(d), Some(t));
            m.sup = if slots.is_empty() {
                Sup::Person(0)
            } else {
                Sup::Person(team_lead[&(d, t)])
            };
            // A growing company: recent hires are more likely.
            let ago = 20.0 + self.rng.f64().powf(1.6) * 2900.0;
            m.hire = self.days(-(ago as i64));
            ps.push(m);
        }

        // Special people among the members.
        let mut pool: Vec<usize> = (first_member..ps.len()).collect();
        self.rng.shuffle(&mut pool);
        let mut take = |n: usize| -> Vec<usize> {
            let n = n.min(pool.len());
            pool.split_off(pool.len() - n)
        };
        let share = |per250: usize| (people * per250 + 125) / 250;
        // The data problems and the two special pre-hires first, so that even a small company
        // (40 people, 12 members) has them all.
        let (problems, prehires, leavers, contractors, on_leave, leaving, students) = if full {
            (
                take(3),
                take(share(8).max(2)),
                take(share(12)),
                take(share(15)),
                take(share(5)),
                take(share(3)),
                take(share(5)),
            )
        } else {
            Default::default()
        };
        let today = self.today;
        for &i in &leavers {
            let hire = self.day_between(-2500, -200);
            let term = self
                .day_between(-360, -1)
                .max(hire.checked_add(90.days()).unwrap_or(hire));
            let p = &mut ps[i];
            p.status = "inactive";
            p.hire = hire;
            p.termination = Some(term);
            p.last_day = Some(
                term.checked_sub(self.rng.i64(0..=10).days())
                    .unwrap_or(term),
            );
            let (ty, reason) = [
                ("resignation", "Career change"),
                ("resignation", "Relocation"),
                ("employer", "Restructuring"),
                ("mutual_agreement", "Mutual agreement"),
            ][self.rng.usize(..4)];
            p.termination_type = Some(ty);
            p.termination_reason = Some(reason);
        }
        for (k, &i) in prehires.iter().enumerate() {
            let hire = self.day_between(1, 21);
            let p = &mut ps[i];
            p.status = "onboarding";
            p.hire = hire;
            if k == 1 {
                p.external = true;
                p.position = format!("Freelance {}", p.position);
                p.contract_end = Some(hire.checked_add(6.months()).unwrap_or(hire));
            }
        }
        for &i in &contractors {
            let hire = self.day_between(-900, -20);
            let end = (self.rng.u8(..3) < 2).then(|| {
                let n = self.rng.i64(14..=270);
                today.checked_add(n.days()).unwrap_or(today)
            });
            let hours = [40, 32, 20][self.rng.usize(..3)];
            let p = &mut ps[i];
            p.external = true;
            p.hire = hire;
            p.contract_end = end;
            p.hours = hours;
            p.position = format!("Freelance {}", p.position);
        }
        for &i in &on_leave {
            ps[i].status = "leave";
        }
        for &i in &leaving {
            let term = self.day_between(3, 45);
            let p = &mut ps[i];
            p.termination = Some(term);
            p.last_day = Some(term.checked_sub(self.rng.i64(0..=7).days()).unwrap_or(term));
            p.termination_type = Some("resignation");
            p.termination_reason = Some("Career change");
        }
        for &i in &students {
            let hire = self.day_between(-300, -30);
            let birth = self.birth(20, 27);
            let p = &mut ps[i];
            let team = p
                .dept
                .zip(p.team)
                .map(|(d, t)| DEPTS[d].teams[t].name)
                .unwrap_or("Engineering");
            p.position = format!("Working Student, {team}");
            p.hours = 20;
            p.hire = hire;
            p.birth = birth;
            p.contract_end = Some(hire.checked_add(1.year()).unwrap_or(hire));
        }

        // Probation: six months after the start, for recent hires (and pre-hires).
        let recent = self.days(-365);
        for p in ps.iter_mut() {
            if p.hire > recent && !p.external {
                p.probation_end = p.hire.checked_add(6.months()).ok();
            }
        }

        // One birthday on 29 February (a leap-day birthday for the triggers).
        if full && let Some(&i) = pool.last() {
            let mut year = today.year() - 32;
            while !jiff::civil::date(year, 1, 1).in_leap_year() {
                year -= 1;
            }
            ps[i].birth = jiff::civil::date(year, 2, 29);
        }

        // Data problems 1-4.
        let mut ghost: Option<Ghost> = None;
        if full {
            // 1. No email at all (payroll import).
            ps[problems[0]].email = None;
            // 2. A pre-hire without a mailbox yet.
            ps[prehires[0]].email = Some(String::new());
            // 3. A supervisor that was deleted from Personio.
            ps[problems[1]].sup = Sup::Ghost;
            ghost = Some((
                0,
                "Jonas",
                "Albrecht",
                format!("jonas.albrecht@{PERSONIO_DOMAIN}"),
            ));
            // 4. A converted contractor: the new internal record, and the old external one
            //    that was never deactivated, with the same email.
            let d = problems[2];
            let hire = self.day_between(-90, -20);
            ps[d].hire = hire;
            ps[d].probation_end = hire.checked_add(6.months()).ok();
            let mut old = ps[d].clone();
            old.external = true;
            old.position = format!("Freelance {}", ps[d].position);
            old.hire = hire
                .checked_sub(self.rng.i64(300..=600).days())
                .unwrap_or(hire);
            old.contract_end = hire.checked_sub(1.day()).ok();
            old.probation_end = None;
            ps.push(old);
        }

        // Created and modified timestamps; ids in creation order, with gaps where records
        // were deleted (as in a real tenant).
        let import_day = self.days(imported);
        for (i, p) in ps.iter_mut().enumerate() {
            let offer = p
                .hire
                .checked_sub(self.rng.i64(14..=60).days())
                .unwrap_or(p.hire);
            p.created = if offer <= import_day {
                import_day.at(10, 2, (i % 60) as i8, 0)
            } else {
                offer.at(
                    self.rng.i8(8..=18),
                    self.rng.i8(0..=59),
                    self.rng.i8(0..=59),
                    0,
                )
            };
            let from = p.created.date().max(self.days(-200));
            let span = (today - from).get_days().max(0) as i64;
            let day = from
                .checked_add(self.rng.i64(0..=span).days())
                .unwrap_or(from);
            p.modified = self.time_on(day).max(p.created);
        }
        let mut order: Vec<usize> = (0..ps.len()).collect();
        order.sort_by_key(|&i| (ps[i].created, i));
        let mut id = 1_204_000u64;
        let mut gap = None;
        for &i in &order {
            id += 1;
            if self.rng.u8(..100) < 8 {
                gap.get_or_insert(id);
                id += 1;
            }
            ps[i].id = id;
        }
        if let Some(g) = ghost.as_mut() {
            g.0 = gap.unwrap_or(id + 17);
        }

        Company {
            people: ps,
            order,
            ghost,
        }
    }

    /// Local midnight with the Europe/Berlin offset of that day: `2019-03-01T00:00:00+01:00`.
    fn local_midnight(&self, d: Date) -> String {
        self.local(d.at(0, 0, 0, 0))
    }

    fn local(&self, dt: DateTime) -> String {
        match dt.to_zoned(self.tz.clone()) {
            Ok(z) => z.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string(),
            Err(_) => format!("{dt}"),
        }
    }

    fn personio_record<'a>(
        &self,
        p: &'a Person,
        all: &'a [Person],
        ghost: Option<&'a Ghost>,
    ) -> wire::Employee<'a> {
        let date = |d: Option<Date>| d.map(|d| self.local_midnight(d));
        let supervisor = match p.sup {
            Sup::None => None,
            Sup::Person(i) => Some(wire::short(
                all[i].id,
                all[i].first,
                all[i].last,
                all[i].email.as_deref(),
            )),
            Sup::Ghost => {
                ghost.map(|(id, first, last, email)| wire::short(*id, first, last, Some(email)))
            }
        };
        let (dept_name, dept_id) = match p.dept {
            Some(d) => (DEPTS[d].name, DEPTS[d].id),
            None => MANAGEMENT,
        };
        let team = match (p.dept, p.team) {
            (Some(d), Some(t)) => Some(wire::org(
                "Team",
                DEPTS[d].teams[t].id,
                DEPTS[d].teams[t].name,
            )),
            _ => None,
        };
        let subcompany = (!p.external).then(|| {
            let (name, id) = SUBCOMPANIES[p.dept.map_or(0, |d| DEPTS[d].subcompany)];
            wire::org("Subcompany", id, name)
        });
        let (office, office_id) = OFFICES[p.office];
        wire::Employee {
            attributes: wire::Attributes {
                contract_end_date: wire::date(
                    "Contract ends",
                    "contract_end_date",
                    date(p.contract_end),
                ),
                created_at: wire::date("created_at", "created_at", self.local(p.created)),
                department: wire::std(
                    "Department",
                    "department",
                    wire::org("Department", dept_id, dept_name),
                ),
                dynamic_24407: wire::custom("Titel", "standard", p.academic_title),
                birthday: wire::custom("Date of birth", "date", p.birth.to_string()),
                email: wire::std("Email", "email", p.email.as_deref()),
                employment_type: wire::std(
                    "Employment type",
                    "employment_type",
                    if p.external { "external" } else { "internal" },
                ),
                first_name: wire::std("First name", "first_name", p.first),
                gender: wire::std("Gender", "gender", p.gender),
                hire_date: wire::date("Hire date", "hire_date", self.local_midnight(p.hire)),
                id: wire::Attr {
                    label: "ID",
                    ty: "integer",
                    universal_id: Some("id"),
                    value: p.id,
                },
                last_modified_at: wire::date(
                    "Last modified",
                    "last_modified_at",
                    self.local(p.modified),
                ),
                last_name: wire::std("Last name", "last_name", p.last),
                last_working_day: wire::date(
                    "Last day of work",
                    "last_working_day",
                    date(p.last_day),
                ),
                office: wire::std("Office", "office", wire::org("Office", office_id, office)),
                position: wire::std("Position", "position", p.position.as_str()),
                preferred_name: wire::std(
                    "Name (preferred)",
                    "preferred_name",
                    p.preferred.unwrap_or(""),
                ),
                probation_period_end: wire::date(
                    "Probation period end",
                    "probation_period_end",
                    date(p.probation_end),
                ),
                status: wire::std("Status", "status", p.status),
                subcompany: wire::std("Subcompany", "subcompany", subcompany),
                supervisor: wire::std("Supervisor", "supervisor", supervisor),
                team: wire::std("Team", "team", team),
                termination_date: wire::date(
                    "Termination date",
                    "termination_date",
                    date(p.termination),
                ),
                termination_reason: wire::std(
                    "Termination reason",
                    "termination_reason",
                    p.termination_reason,
                ),
                termination_type: wire::std(
                    "Termination type",
                    "termination_type",
                    p.termination_type,
                ),
                weekly_working_hours: wire::std(
                    "Weekly hours",
                    "weekly_working_hours",
                    p.hours.to_string(),
                ),
            },
            ty: "Employee",
        }
    }
}

/// One Personio attribute: `{label, value, type, universal_id}`.
fn attr(label: &str, value: Value, ty: &str, universal_id: Value) -> Value {
    json!({"label": label, "value": value, "type": ty, "universal_id": universal_id})
}

// ---------------------------------------------------------------------------------------
// Merge (the US subsidiary's HRIS).

struct UsTeam {
    name: &'static str,
    dept: &'static str,
    weight: u32,
    titles: &'static [&'static str],
}

const US_TEAMS: &[UsTeam] = &[
    UsTeam {
        name: "US Sales East",
        dept: "Sales",
        weight: 5,
        titles: &[
            "Account Executive",
            "Senior Account Executive",
            "Sales Development Representative",
        ],
    },
    UsTeam {
        name: "US Sales West",
        dept: "Sales",
        weight: 4,
        titles: &["Account Executive", "Sales Development Representative"],
    },
    UsTeam {
        name: "US Customer Success",
        dept: "Customer Success",
        weight: 4,
        titles: &["Customer Success Manager", "Support Specialist"],
    },
    UsTeam {
        name: "US Engineering",
        dept: "Engineering",
        weight: 3,
        titles: &["Software Engineer", "Solutions Architect"],
    },
    UsTeam {
        name: "US Marketing",
        dept: "Marketing",
        weight: 2,
        titles: &["Field Marketing Manager", "Marketing Coordinator"],
    },
];

/// Heads of the US departments (title, team indices they run).
const US_HEADS: &[(&str, &[usize])] = &[
    ("Head of Sales, North America", &[0, 1]),
    ("Head of Customer Success, US", &[2]),
    ("Engineering Manager, US", &[3]),
    ("Head of Marketing, US", &[4]),
];

const US_LOCATIONS: &[(&str, &str, &str, &str, &str)] = &[
    ("NYC Office", "88 Hudson Street", "New York", "NY", "10013"),
    (
        "Austin Office",
        "410 Congress Avenue",
        "Austin",
        "TX",
        "78701",
    ),
];

#[derive(Clone)]
struct UsPerson {
    id: String,
    remote_id: String,
    number: String,
    first: String,
    last: String,
    display: String,
    gender: &'static str,
    email: String,
    team: Option<usize>,
    location: usize,
    title: String,
    employment_type: &'static str,
    status: &'static str,
    start: Date,
    termination: Option<Date>,
    birth: Option<Date>,
    /// Index of the manager; `usize::MAX` for the manager outside the listing.
    manager: Option<usize>,
    created: DateTime,
    modified: DateTime,
    deleted: bool,
    employment_id: String,
    pay: (f64, &'static str, &'static str),
}

/// The shared objects every expanded record points at.
struct UsOrg {
    company: Value,
    locations: Vec<Value>,
    groups: Vec<(String, Value)>,
    cost_center: Value,
    teams: Vec<Value>,
}

impl Gen {
    fn uuid(&mut self) -> String {
        let a = self.rng.u128(..);
        let b = (a & !(0xf << 76)) | (0x4 << 76); // version 4
        let b = (b & !(0x3 << 62)) | (0x2 << 62); // RFC 4122 variant
        let h = format!("{b:032x}");
        format!(
            "{}-{}-{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        )
    }

    /// Merge's date-time for a calendar date.
    fn utc_date(d: Date) -> String {
        format!("{d}T00:00:00Z")
    }

    fn utc(dt: DateTime) -> String {
        dt.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
    }

    fn us_org(&mut self) -> UsOrg {
        let linked = Self::utc(self.days(-400).at(15, 4, 11, 0));
        let company = json!({
            "id": self.uuid(),
            "remote_id": "1",
            "legal_name": "Kestrel Labs Inc.",
            "display_name": "Kestrel Labs US",
            "eins": ["98-7654321"],
            "remote_was_deleted": false,
            "field_mappings": null,
            "modified_at": linked,
            "remote_data": null,
        });
        let locations = US_LOCATIONS
            .iter()
            .enumerate()
            .map(|(i, (name, street, city, state, zip))| {
                json!({
                    "id": self.uuid(),
                    "remote_id": format!("{}", 300 + i),
                    "name": name,
                    "phone_number": null,
                    "street_1": street,
                    "street_2": null,
                    "city": city,
                    "state": state,
                    "zip_code": zip,
                    "country": "US",
                    "location_type": "WORK",
                    "remote_was_deleted": false,
                    "field_mappings": null,
                    "modified_at": linked,
                    "remote_data": null,
                })
            })
            .collect();
        let mut groups = Vec::new();
        for (i, dept) in [
            "Sales",
            "Customer Success",
            "Engineering",
            "Marketing",
            "Operations",
        ]
        .into_iter()
        .enumerate()
        {
            let g = json!({
                "id": self.uuid(),
                "remote_id": format!("{}", 800 + i),
                "parent_group": null,
                "name": dept,
                "type": "DEPARTMENT",
                "remote_was_deleted": false,
                "field_mappings": null,
                "modified_at": linked,
                "remote_data": null,
            });
            groups.push((dept.to_string(), g));
        }
        let cost_center = json!({
            "id": self.uuid(),
            "remote_id": "900",
            "parent_group": null,
            "name": "US-CC-100",
            "type": "COST_CENTER",
            "remote_was_deleted": false,
            "field_mappings": null,
            "modified_at": linked,
            "remote_data": null,
        });
        let teams = US_TEAMS
            .iter()
            .enumerate()
            .map(|(i, t)| {
                json!({
                    "id": self.uuid(),
                    "remote_id": format!("{}", 700 + i),
                    "name": t.name,
                    "parent_team": null,
                    "remote_was_deleted": false,
                    "field_mappings": null,
                    "modified_at": linked,
                    "remote_data": null,
                })
            })
            .collect();
        UsOrg {
            company,
            locations,
            groups,
            cost_center,
            teams,
        }
    }

    fn us_person(&mut self, team: Option<usize>) -> UsPerson {
        let (first, gender) = names::US_FIRST[self.rng.usize(..names::US_FIRST.len())];
        let last = names::US_LAST[self.rng.usize(..names::US_LAST.len())];
        let nick = names::US_NICKNAMES
            .iter()
            .find(|(f, _)| *f == first)
            .filter(|_| self.rng.bool())
            .map(|(_, n)| *n);
        let title = match team {
            Some(t) => {
                let titles = US_TEAMS[t].titles;
                titles[self.rng.usize(..titles.len())].to_string()
            }
            None => String::new(),
        };
        let ago = 30.0 + self.rng.f64().powf(1.4) * 1400.0;
        let exempt = self.rng.u8(..100) < 70;
        UsPerson {
            id: self.uuid(),
            remote_id: String::new(),
            number: String::new(),
            email: self.email(first, last, MERGE_DOMAIN),
            display: format!("{} {last}", nick.unwrap_or(first)),
            first: first.to_string(),
            last: last.to_string(),
            gender,
            team,
            location: self.weighted(&[3, 2]),
            title,
            employment_type: "FULL_TIME",
            status: "ACTIVE",
            start: self.days(-(ago as i64)),
            termination: None,
            birth: (self.rng.u8(..100) < 85).then(|| self.birth(22, 62)),
            manager: None,
            created: self.today.at(0, 0, 0, 0),
            modified: self.today.at(0, 0, 0, 0),
            deleted: false,
            employment_id: self.uuid(),
            pay: if exempt {
                (f64::from(self.rng.u32(70..=190)) * 1000.0, "YEAR", "EXEMPT")
            } else {
                (f64::from(self.rng.u32(24..=48)), "HOUR", "NONEXEMPT")
            },
        }
    }

    fn merge(&mut self, count: usize, company: &Company) -> UsCompany {
        let org = self.us_org();
        if count == 0 {
            return UsCompany {
                us: Vec::new(),
                order: Vec::new(),
                org,
                ghost: None,
            };
        }
        let full = count >= 10;
        let mut us: Vec<UsPerson> = Vec::with_capacity(count);

        let mut gm = self.us_person(None);
        gm.title = "General Manager, US".into();
        gm.start = self.days(-1500);
        us.push(gm);
        let mut lead_of: Vec<usize> = vec![0; US_TEAMS.len()];
        if full {
            for (title, teams) in US_HEADS {
                let mut h = self.us_person(Some(teams[0]));
                h.title = (*title).to_string();
                h.manager = Some(0);
                h.start = self.day_between(-1400, -500);
                us.push(h);
                for &t in *teams {
                    lead_of[t] = us.len() - 1;
                }
            }
        }

        // People seconded from Berlin: active, internal, ordinary members of a department
        // with a US counterpart (and no data problem or special status).
        let mut seconded: Vec<(usize, usize)> = Vec::new();
        if full {
            let want = (count / 4).min(10);
            for (i, p) in company.people.iter().enumerate() {
                if seconded.len() >= want {
                    break;
                }
                let Some(d) = p.dept else { continue };
                let Some(&(_, t)) = US_SECONDMENT.iter().find(|(pd, _)| *pd == d) else {
                    continue;
                };
                let plain = p.role == Role::Member
                    && p.status == "active"
                    && !p.external
                    && p.termination.is_none()
                    && p.sup != Sup::Ghost
                    && p.email.as_deref().is_some_and(|e| !e.is_empty())
                    && company.people.iter().filter(|q| q.email == p.email).count() == 1;
                if plain {
                    seconded.push((i, t));
                }
            }
        }
        for (k, &(i, t)) in seconded.iter().enumerate() {
            let p = &company.people[i];
            let mut s = self.us_person(Some(t));
            s.first = p.first.to_string();
            s.last = p.last.to_string();
            s.display = format!("{} {}", p.preferred.unwrap_or(p.first), p.last);
            s.gender = match p.gender {
                "male" => "MALE",
                "female" => "FEMALE",
                _ => "OTHER",
            };
            let email = p.email.clone().unwrap_or_default();
            s.email = email_variant(&email, k);
            // Half keep their Personio title; the others have their US title here.
            if k % 2 == 0 {
                s.title = p.position.clone();
            } else if s.title == p.position {
                s.title = format!("Senior {}", p.position);
            }
            s.manager = Some(lead_of[t]);
            s.start = self.day_between(-400, -30).max(p.hire);
            s.birth = Some(p.birth);
            us.push(s);
        }

        // The US team's own people.
        let weights: Vec<u32> = US_TEAMS.iter().map(|t| t.weight).collect();
        let first_member = us.len();
        while us.len() < count {
            let t = self.weighted(&weights);
            let mut m = self.us_person(Some(t));
            m.manager = Some(lead_of[t]);
            us.push(m);
        }
        let mut pool: Vec<usize> = (first_member..us.len()).collect();
        self.rng.shuffle(&mut pool);
        let mut take = |n: usize| -> Vec<usize> {
            let n = n.min(pool.len());
            pool.split_off(pool.len() - n)
        };
        let share = |per50: usize| (count * per50 + 25) / 50;
        if full {
            for i in take(share(3).max(1)) {
                us[i].status = "PENDING";
                us[i].start = self.day_between(3, 28);
            }
            for i in take(share(4)) {
                us[i].status = "INACTIVE";
                us[i].start = self.day_between(-1300, -300);
                us[i].termination = Some(self.day_between(-280, -5));
            }
            for (k, i) in take(share(4)).into_iter().enumerate() {
                us[i].employment_type = if k == 3 { "FREELANCE" } else { "CONTRACTOR" };
                us[i].pay = (f64::from(self.rng.u32(60..=140)), "HOUR", "NONEXEMPT");
            }
            for i in take(share(2)) {
                us[i].employment_type = "PART_TIME";
            }
            for i in take(share(1)) {
                us[i].employment_type = "INTERN";
                us[i].title = "Intern".into();
                us[i].birth = Some(self.birth(19, 23));
                us[i].pay = (f64::from(self.rng.u32(22..=30)), "HOUR", "NONEXEMPT");
            }
            // 5. A manager outside the listing (deleted from the US HRIS).
            if let Some(i) = take(1).pop() {
                us[i].manager = Some(usize::MAX);
            }
            // Deleted in the US HRIS after Merge synced it: Merge still lists the record,
            // marked `remote_was_deleted`; the built-in mapping filters it out.
            if let Some(i) = take(1).pop() {
                us[i].deleted = true;
            }
        }

        // Merge's view of the HRIS's creation and its own last change.
        let linked = self.days(-400);
        for p in us.iter_mut() {
            let hired = p
                .start
                .checked_sub(self.rng.i64(14..=45).days())
                .unwrap_or(p.start);
            p.created = hired.at(self.rng.i8(8..=18), self.rng.i8(0..=59), 0, 0);
            let from = hired.max(linked);
            let span = (self.today - from).get_days().max(0) as i64;
            let day = from
                .checked_add(self.rng.i64(0..=span).days())
                .unwrap_or(from);
            p.modified = day
                .at(
                    self.rng.i8(0..=23),
                    self.rng.i8(0..=59),
                    self.rng.i8(0..=59),
                    0,
                )
                .max(p.created);
        }
        let mut order: Vec<usize> = (0..us.len()).collect();
        order.sort_by_key(|&i| (us[i].created, i));
        for (n, &i) in order.iter().enumerate() {
            us[i].remote_id = format!("{}", 40_100 + n * 3 + (i % 3));
            us[i].number = format!("{}", 1001 + n);
        }
        let ghost = full.then(|| {
            let id = self.uuid();
            json!({
                "id": id,
                "remote_id": "39877",
                "employee_number": "977",
                "company": org.company["id"],
                "first_name": "Derek",
                "last_name": "Holloway",
                "display_full_name": "Derek Holloway",
                "username": "dholloway",
                "groups": [org.groups[0].1["id"]],
                "work_email": format!("derek.holloway@{MERGE_DOMAIN}"),
                "personal_email": null,
                "mobile_phone_number": null,
                "employments": [self.uuid()],
                "home_location": null,
                "work_location": org.locations[0]["id"],
                "manager": null,
                "team": org.teams[0]["id"],
                "pay_group": null,
                "employment_status": "INACTIVE",
                "remote_was_deleted": true,
            })
        });

        UsCompany {
            us,
            order,
            org,
            ghost,
        }
    }
}

/// The Merge side, ready to be turned into records.
struct UsCompany {
    us: Vec<UsPerson>,
    /// Listing order (by creation in the HRIS).
    order: Vec<usize>,
    org: UsOrg,
    /// The deleted manager of data problem 5, as Merge expands it.
    ghost: Option<Value>,
}

impl UsCompany {
    /// The expanded record of person `i` (its manager expanded one level, bare UUIDs inside),
    /// and what the server indexes: the last change, the status, the expanded fields.
    fn record(&self, i: usize) -> (wire::MergeEmployee<'_>, MergeMeta) {
        let p = &self.us[i];
        let manager = match p.manager {
            None => wire::Manager::None,
            Some(usize::MAX) => self
                .ghost
                .as_ref()
                .map_or(wire::Manager::None, wire::Manager::Raw),
            Some(m) => wire::Manager::Expanded(Box::new(us_record(&self.us[m], self, None))),
        };
        let mut expanded = vec!["company", "employments", "groups", "work_location"];
        if p.team.is_some() {
            expanded.push("team");
        }
        if !matches!(manager, wire::Manager::None) {
            expanded.push("manager");
        }
        let meta = MergeMeta {
            modified_at: p
                .modified
                .to_zoned(TimeZone::UTC)
                .map(|z| z.timestamp())
                .ok(),
            status: p.status,
            expanded,
        };
        (us_record(p, self, Some(manager)), meta)
    }
}

/// The same address written differently, as a second system might have it.
fn email_variant(email: &str, k: usize) -> String {
    let cap = |s: &str| {
        s.split('.')
            .map(|w| {
                let mut c = w.chars();
                c.next()
                    .map(|f| f.to_uppercase().chain(c).collect::<String>())
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join(".")
    };
    let (local, domain) = email.split_once('@').unwrap_or((email, ""));
    match k % 5 {
        0 => format!("{}@{}", cap(local), cap(domain)),
        1 => format!("{email} "),
        2 => email.to_uppercase(),
        3 => format!(" {local}@{}", cap(domain)),
        _ => email.to_string(),
    }
}

/// A Merge Employee. With `manager: Some(..)`, the expanded form (related objects inline, the
/// manager as given); with `None`, the bare form with UUIDs (how a manager is expanded).
fn us_record<'a>(
    p: &'a UsPerson,
    c: &'a UsCompany,
    manager: Option<wire::Manager<'a>>,
) -> wire::MergeEmployee<'a> {
    let org = &c.org;
    let expanded = manager.is_some();
    let pick = |v: &'a Value| if expanded { v } else { &v["id"] };
    let dept = p.team.map_or("Operations", |t| US_TEAMS[t].dept);
    let dept_group = org
        .groups
        .iter()
        .find(|(n, _)| n == dept)
        .map(|(_, g)| g)
        .unwrap_or(&org.groups[0].1);
    let employment = if expanded {
        wire::Employment::Expanded(wire::EmploymentObject {
            effective_date: Gen::utc_date(p.start),
            employee: &p.id,
            employment_type: p.employment_type,
            field_mappings: (),
            flsa_status: p.pay.2,
            id: &p.employment_id,
            job_title: &p.title,
            modified_at: Gen::utc(p.modified),
            pay_currency: "USD",
            pay_frequency: if p.pay.1 == "YEAR" {
                "SEMIMONTHLY"
            } else {
                "BIWEEKLY"
            },
            pay_group: (),
            pay_period: p.pay.1,
            pay_rate: p.pay.0,
            remote_data: (),
            remote_id: format!("J{}", p.remote_id),
            remote_was_deleted: false,
        })
    } else {
        wire::Employment::Id(&p.employment_id)
    };
    let manager = match manager {
        Some(m) => m,
        None => match p.manager {
            Some(m) if m != usize::MAX => wire::Manager::Id(&c.us[m].id),
            _ => wire::Manager::None,
        },
    };
    let hire = p.start.checked_sub(21.days()).unwrap_or(p.start);
    wire::MergeEmployee {
        avatar: (),
        company: pick(&org.company),
        custom_fields: (),
        date_of_birth: p.birth.map(Gen::utc_date),
        display_full_name: &p.display,
        employee_number: &p.number,
        employment_status: p.status,
        employments: [employment],
        ethnicity: (),
        field_mappings: (),
        first_name: &p.first,
        gender: p.gender,
        groups: [pick(dept_group), pick(&org.cost_center)],
        hire_date: Gen::utc_date(hire),
        home_location: (),
        id: &p.id,
        last_name: &p.last,
        manager,
        marital_status: (),
        mobile_phone_number: (),
        modified_at: Gen::utc(p.modified),
        pay_group: (),
        personal_email: (),
        remote_created_at: Gen::utc(p.created),
        remote_data: (),
        remote_id: &p.remote_id,
        remote_was_deleted: p.deleted,
        start_date: Gen::utc_date(p.start),
        team: p.team.map(|t| pick(&org.teams[t])),
        termination_date: p.termination.map(Gen::utc_date),
        username: format!(
            "{}{}",
            names::email_part(&p.first).chars().next().unwrap_or('x'),
            names::email_part(&p.last)
        ),
        work_email: &p.email,
        work_location: pick(&org.locations[p.location]),
    }
}

//! Fixed name lists for the synthetic company. The generator combines them with a seeded PRNG,
//! so the same seed always gives the same people. Every name is invented as a combination;
//! none belongs to a real record.

/// First names common in a Berlin/Munich/Hamburg tech company, with Personio's gender value.
pub const EU_FIRST: &[(&str, &str)] = &[
    ("Anna", "female"),
    ("Lena", "female"),
    ("Marie", "female"),
    ("Sophie", "female"),
    ("Laura", "female"),
    ("Julia", "female"),
    ("Katharina", "female"),
    ("Hannah", "female"),
    ("Lea", "female"),
    ("Clara", "female"),
    ("Johanna", "female"),
    ("Charlotte", "female"),
    ("Emilia", "female"),
    ("Franziska", "female"),
    ("Miriam", "female"),
    ("Sarah", "female"),
    ("Nina", "female"),
    ("Paula", "female"),
    ("Zeynep", "female"),
    ("Aylin", "female"),
    ("Agnieszka", "female"),
    ("Elena", "female"),
    ("Chiara", "female"),
    ("Inès", "female"),
    ("Priya", "female"),
    ("Mei", "female"),
    ("Ingrid", "female"),
    ("Małgorzata", "female"),
    ("Sofía", "female"),
    ("Amara", "female"),
    ("Jana", "female"),
    ("Theresa", "female"),
    ("Alexander", "male"),
    ("Maximilian", "male"),
    ("Paul", "male"),
    ("Lukas", "male"),
    ("Felix", "male"),
    ("Jonas", "male"),
    ("Leon", "male"),
    ("Tobias", "male"),
    ("Florian", "male"),
    ("Sebastian", "male"),
    ("Moritz", "male"),
    ("Niklas", "male"),
    ("Jan", "male"),
    ("David", "male"),
    ("Matthias", "male"),
    ("Stefan", "male"),
    ("Christian", "male"),
    ("Benedikt", "male"),
    ("Emre", "male"),
    ("Mehmet", "male"),
    ("Tomasz", "male"),
    ("Marco", "male"),
    ("Luca", "male"),
    ("Joël", "male"),
    ("Arjun", "male"),
    ("Wei", "male"),
    ("Lars", "male"),
    ("Oskar", "male"),
    ("Mateo", "male"),
    ("Kwame", "male"),
    ("Robin", "diverse"),
    ("Kim", "diverse"),
    ("Alex", "diverse"),
    ("Sascha", "diverse"),
];

/// Last names for the Personio side.
pub const EU_LAST: &[&str] = &[
    "Müller",
    "Schmidt",
    "Schneider",
    "Fischer",
    "Weber",
    "Meyer",
    "Wagner",
    "Becker",
    "Schulz",
    "Hoffmann",
    "Schäfer",
    "Koch",
    "Bauer",
    "Richter",
    "Klein",
    "Wolf",
    "Schröder",
    "Neumann",
    "Schwarz",
    "Zimmermann",
    "Braun",
    "Krüger",
    "Hofmann",
    "Hartmann",
    "Lange",
    "Schmitt",
    "Werner",
    "Krause",
    "Lehmann",
    "Köhler",
    "Maier",
    "Vogel",
    "Friedrich",
    "Günther",
    "Brandt",
    "Roth",
    "Yılmaz",
    "Kaya",
    "Demir",
    "Nowak",
    "Kowalski",
    "Wiśniewska",
    "Rossi",
    "Bianchi",
    "García",
    "Martínez",
    "Dubois",
    "Lefèvre",
    "Jansen",
    "de Vries",
    "Nielsen",
    "Lindqvist",
    "O'Brien",
    "Sharma",
    "Patel",
    "Nguyen",
    "Chen",
    "Okafor",
    "Mensah",
    "Papadopoulos",
    "von Berg",
    "Scholz-Wendt",
];

/// Short names people go by, for Personio's `preferred_name`.
pub const NICKNAMES: &[(&str, &str)] = &[
    ("Alexander", "Alex"),
    ("Maximilian", "Max"),
    ("Katharina", "Kathi"),
    ("Franziska", "Franzi"),
    ("Sebastian", "Basti"),
    ("Benedikt", "Ben"),
    ("Johanna", "Jo"),
    ("Charlotte", "Lotte"),
    ("Matthias", "Matze"),
    ("Christian", "Chris"),
    ("Małgorzata", "Gosia"),
    ("Tobias", "Tobi"),
];

/// First names for the US subsidiary, with Merge's gender value.
pub const US_FIRST: &[(&str, &str)] = &[
    ("Emily", "FEMALE"),
    ("Olivia", "FEMALE"),
    ("Madison", "FEMALE"),
    ("Ashley", "FEMALE"),
    ("Jessica", "FEMALE"),
    ("Megan", "FEMALE"),
    ("Rachel", "FEMALE"),
    ("Lauren", "FEMALE"),
    ("Taylor", "FEMALE"),
    ("Brianna", "FEMALE"),
    ("Keisha", "FEMALE"),
    ("Maria", "FEMALE"),
    ("Guadalupe", "FEMALE"),
    ("Grace", "FEMALE"),
    ("Hailey", "FEMALE"),
    ("Naomi", "FEMALE"),
    ("Michael", "MALE"),
    ("Christopher", "MALE"),
    ("Joshua", "MALE"),
    ("Matthew", "MALE"),
    ("Daniel", "MALE"),
    ("Andrew", "MALE"),
    ("Tyler", "MALE"),
    ("Brandon", "MALE"),
    ("Justin", "MALE"),
    ("Robert", "MALE"),
    ("William", "MALE"),
    ("James", "MALE"),
    ("Jamal", "MALE"),
    ("Carlos", "MALE"),
    ("Diego", "MALE"),
    ("Kevin", "MALE"),
    ("Ethan", "MALE"),
    ("Jordan", "NON-BINARY"),
    ("Casey", "NON-BINARY"),
    ("Riley", "PREFER_NOT_TO_DISCLOSE"),
];

/// Last names for the US subsidiary.
pub const US_LAST: &[&str] = &[
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Miller",
    "Davis",
    "Wilson",
    "Anderson",
    "Thomas",
    "Moore",
    "Jackson",
    "Martin",
    "Thompson",
    "White",
    "Harris",
    "Clark",
    "Lewis",
    "Robinson",
    "Walker",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Rivera",
    "Kim",
    "Park",
    "Washington",
    "Brooks",
    "Sullivan",
    "Murphy",
    "O'Connor",
    "Bennett",
    "Coleman",
    "Reyes",
    "Foster",
    "Hayes",
];

/// The name US colleagues use for display, when it differs from the first name.
pub const US_NICKNAMES: &[(&str, &str)] = &[
    ("Robert", "Bob"),
    ("William", "Will"),
    ("Christopher", "Chris"),
    ("Matthew", "Matt"),
    ("Michael", "Mike"),
    ("Joshua", "Josh"),
    ("Andrew", "Drew"),
];

/// Lowercase ASCII for an email local part: umlauts and accents transliterated, spaces and
/// apostrophes dropped (`Müller` → `mueller`, `de Vries` → `devries`, `O'Brien` → `obrien`).
pub fn email_part(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars().flat_map(char::to_lowercase) {
        match c {
            'a'..='z' | '0'..='9' | '-' => out.push(c),
            'ä' => out.push_str("ae"),
            'ö' => out.push_str("oe"),
            'ü' => out.push_str("ue"),
            'ß' => out.push_str("ss"),
            'á' | 'à' | 'â' => out.push('a'),
            'é' | 'è' | 'ê' | 'ë' => out.push('e'),
            'í' | 'ì' | 'î' | 'ï' | 'ı' => out.push('i'),
            'ó' | 'ò' | 'ô' => out.push('o'),
            'ú' | 'ù' | 'û' => out.push('u'),
            'ñ' | 'ń' => out.push('n'),
            'ç' => out.push('c'),
            'ł' => out.push('l'),
            'ś' => out.push('s'),
            'ę' => out.push('e'),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_parts_are_plain_ascii() {
        assert_eq!(email_part("Müller"), "mueller");
        assert_eq!(email_part("de Vries"), "devries");
        assert_eq!(email_part("O'Brien"), "obrien");
        assert_eq!(email_part("Małgorzata"), "malgorzata");
        assert_eq!(email_part("Yılmaz"), "yilmaz");
        assert_eq!(email_part("Scholz-Wendt"), "scholz-wendt");
        for (n, _) in EU_FIRST.iter().chain(US_FIRST) {
            let p = email_part(n);
            assert!(!p.is_empty() && p.is_ascii(), "{n}");
        }
        for n in EU_LAST.iter().chain(US_LAST) {
            let p = email_part(n);
            assert!(!p.is_empty() && p.is_ascii(), "{n}");
        }
    }
}

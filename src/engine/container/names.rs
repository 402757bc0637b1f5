//! Container IDs (64 hex) and docker's random `adjective_surname` names.

/// A subset of moby's names-generator lists (pkg/namesgenerator).
const LEFT: &[&str] = &[
    "admiring", "adoring", "affectionate", "agitated", "amazing", "angry", "awesome",
    "beautiful", "blissful", "bold", "boring", "brave", "busy", "charming", "clever",
    "compassionate", "competent", "condescending", "confident", "cool", "cranky", "crazy",
    "dazzling", "determined", "distracted", "dreamy", "eager", "ecstatic", "elastic",
    "elated", "elegant", "eloquent", "epic", "exciting", "fervent", "festive", "flamboyant",
    "focused", "friendly", "frosty", "funny", "gallant", "gifted", "goofy", "gracious",
    "great", "happy", "hardcore", "heuristic", "hopeful", "hungry", "infallible", "inspiring",
    "intelligent", "interesting", "jolly", "jovial", "keen", "kind", "laughing", "loving",
    "lucid", "magical", "modest", "musing", "mystifying", "naughty", "nervous", "nice",
    "nifty", "nostalgic", "objective", "optimistic", "peaceful", "pedantic", "pensive",
    "practical", "priceless", "quirky", "quizzical", "recursing", "relaxed", "reverent",
    "romantic", "sad", "serene", "sharp", "silly", "sleepy", "stoic", "strange", "stupefied",
    "suspicious", "sweet", "tender", "thirsty", "trusting", "unruffled", "upbeat", "vibrant",
    "vigilant", "vigorous", "wizardly", "wonderful", "xenodochial", "youthful", "zealous",
    "zen",
];

const RIGHT: &[&str] = &[
    "albattani", "allen", "almeida", "archimedes", "ardinghelli", "aryabhata", "babbage",
    "banach", "bardeen", "bartik", "bassi", "bell", "bhabha", "bhaskara", "blackwell", "bohr",
    "booth", "borg", "bose", "boyd", "brahmagupta", "brattain", "brown", "carson", "cerf",
    "chandrasekhar", "chaplygin", "chatelet", "chebyshev", "cohen", "curie", "darwin", "davinci",
    "dijkstra", "dirac", "driscoll", "dubinsky", "easley", "edison", "einstein", "elion",
    "engelbart", "euclid", "euler", "faraday", "fermat", "fermi", "feynman", "franklin",
    "galileo", "gates", "gauss", "germain", "goldberg", "goldstine", "goodall", "hamilton",
    "hawking", "heisenberg", "hermann", "hertz", "hodgkin", "hofstadter", "hopper", "hypatia",
    "jackson", "jang", "jemison", "jennings", "johnson", "joliot", "kalam", "kepler", "khorana",
    "kilby", "knuth", "kowalevski", "lalande", "lamarr", "lamport", "leakey", "leavitt",
    "lederberg", "lehmann", "lewin", "lichterman", "liskov", "lovelace", "lumiere", "mahavira",
    "margulis", "matsumoto", "maxwell", "mayer", "mccarthy", "mcclintock", "meitner", "mendel",
    "mendeleev", "merkle", "minsky", "mirzakhani", "montalcini", "moore", "morse", "napier",
    "nash", "neumann", "newton", "nobel", "noether", "northcutt", "noyce", "panini", "pare",
    "pascal", "pasteur", "payne", "perlman", "pike", "poincare", "poitras", "ptolemy", "raman",
    "ramanujan", "ride", "ritchie", "robinson", "roentgen", "rosalind", "rubin", "saha",
    "sammet", "shamir", "shannon", "shaw", "shirley", "shockley", "sinoussi", "snyder",
    "spence", "stonebraker", "sutherland", "swanson", "swartz", "tesla", "thompson", "torvalds",
    "turing", "varahamihira", "villani", "visvesvaraya", "volhard", "wescoff", "wiles",
    "williams", "wilson", "wing", "wozniak", "wright", "wu", "yalow", "yonath", "zhukovsky",
];

/// A new random 64-hex container ID.
pub fn new_id() -> String {
    let a: [u8; 32] = rand::random();
    hex::encode(a)
}

/// `adjective_surname`, with a digit appended after collisions, as moby
/// does (`retry` > 0). "boring_wozniak" is never generated (moby's rule).
pub fn random_name(retry: u32) -> String {
    loop {
        let l = LEFT[rand::random_range(0..LEFT.len())];
        let r = RIGHT[rand::random_range(0..RIGHT.len())];
        if l == "boring" && r == "wozniak" {
            continue;
        }
        return if retry > 0 {
            format!("{l}_{r}{}", rand::random_range(0..10))
        } else {
            format!("{l}_{r}")
        };
    }
}

/// Docker's name rule: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub fn valid_name(n: &str) -> bool {
    let b = n.as_bytes();
    b.len() >= 2
        && b[0].is_ascii_alphanumeric()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_names() {
        let id = new_id();
        assert_eq!(id.len(), 64);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        let n = random_name(0);
        assert!(n.contains('_') && valid_name(&n));
        assert!(!valid_name("/x") && !valid_name("a") && valid_name("web-1.a_b"));
    }
}

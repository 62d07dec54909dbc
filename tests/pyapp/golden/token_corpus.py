"""Hard strings for the tokenizer golden file (tests/pyapp/golden/tokens.json).

Each group targets one rule of OpenAI's tokenizer (clip/simple_tokenizer.py); escapes are used for
every invisible or ambiguous character so the file reads unambiguously. Order matters only for the
golden file's diffs: append new strings at the end of a group.
"""

from __future__ import annotations

BASICS = [
    "a photo of a cat",
    "A photo of a CAT.",
    "a photo of a {}.",
    "itap of a dog",
    "a bad photo of the car",
    "a sculpture of a golden retriever",
    "a tattoo of the hot air balloon",
    "x",
    "I",
    "2024",
    "3.14159",
    "-273.15°C",
    "$1,000,000",
    "100%",
    "e-mail",
    "state-of-the-art",
    "CLIP: Connecting Text and Images",
    "The quick brown fox jumps over the lazy dog.",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "lol!!!!!!!!!!!!!!!!!!!!",
    "...",
    "?!?!",
    "#hashtag @mention",
    "C'est la vie",
]

EMPTY_AND_SPACE = [
    "",
    " ",
    "   ",
    "\t",
    "\n",
    "\r\n",
    " \t\n\r\x0b\x0c ",
    "a\tb\nc\r\nd",
    "  leading and trailing  ",
    "many     inner      spaces",
    "nbsp\u00a0between",
    "ideographic\u3000space",
    "em\u2003space and thin\u2009space",
    "line\u2028separator\u2029paragraph",
    "next\x85line",
    "zero\u200bwidth\u200bspace",
    "\u00a0\u00a0",
    "\u3000",
    "file\x1cgroup\x1drecord\x1eunit\x1fsep",
    "\x1c\x1d lead",
]

CONTROL_CHARS = [
    "null\x00byte",
    "bell\x07and\x08backspace",
    "esc\x1b[31mred\x1b[0m",
    "del\x7fchar",
    "c1\x80\x9fcontrols",
    "bom\ufeffinside",
    "\ufeffleading bom",
    "soft\u00adhyphen",
    "zwj\u200dzwnj\u200c",
    "lrm\u200erlm\u200f",
    "replacement \ufffd char",
    "private use \ue000\uf8ff",
    "noncharacter \ufdd0 \uffff",
    "plane 16 \U0010fffd",
    "lone surrogate \ud800 here",
    # Not adjacent: json.loads would join an adjacent "\ud83d\ude00" pair into one character.
    "split pair \ud83d x \ude00",
]

HTML = [
    "&amp;",
    "Tom &amp; Jerry",
    "&lt;br&gt;",
    "line one<br>line two",
    "a <b>bold</b> move & more",
    "it&#39;s",
    "it&#x27;s",
    "&amp;amp;",
    "&amp;lt;b&amp;gt;",
    "&amp;amp;amp;",
    "&quot;quoted&quot;",
    "&nbsp;&nbsp;spaced",
    "&eacute;t&eacute; &hellip;",
    "&copy; 2024 &reg; &trade;",
    "&#128512; smile",
    "&#x1F600; smile",
    "&#0; &#xd800; &#x110000;",
    "&unknown; &amp",
    "AT&T",
    "&ltx &gtx",
]

QUOTES_AND_CONTRACTIONS = [
    "cat's toy",
    "CAT'S TOY",
    "don't",
    "DON'T",
    "we're here",
    "they've gone",
    "I'm sure",
    "we'll see",
    "she'd know",
    "it’s smart quotes",
    "don’t we’re they’ve I’m we’ll she’d",
    "‘single’ and “double” quotes",
    "„German“ «French» ‹angles›",
    "rock 'n' roll",
    "''s",
    "'s's's",
    "'sam 'tom 'reed 'vera 'mo 'lloyd 'dan",
    "o'clock",
    "y'all",
    "it\u02bcs modifier apostrophe",
    "it\u2032s prime",
    "it\uff07s fullwidth apostrophe",
    "it'\u017f long s",
    "IT'\u017f",
    "`backtick`s",
]

SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|startoftext|>",
    "a <|endoftext|> b",
    "<|startoftext|>hello<|endoftext|>",
    "<|ENDOFTEXT|>",
    "<|StartOfText|>",
    "<|endoftext|><|endoftext|><|endoftext|>",
    "<|endoftext|",
    "<endoftext>",
    "< |endoftext| >",
    "<|\u017ftartoftext|>",
    "&lt;|endoftext|&gt;",
    "</w>",
    "word</w>end",
]

LATIN_DIACRITICS = [
    "café crème brûlée",
    "CAFÉ",
    "cafe\u0301 (decomposed)",
    "Ångström",
    "naïve façade",
    "Straße",
    "STRASSE ẞ",
    "Łódź",
    "Dvořák",
    "Søren Kierkegaard",
    "İstanbul",
    "ISTANBUL ı",
    "Ĳsselmeer ĳ",
    "ﬁne ﬂour ﬀ ﬃ ﬄ ﬅ ﬆ",
    "Ǆ ǅ ǆ",
    "ǰ ẖ",
    "Ꞵ Ɬ",
    "a\u0300\u0301\u0302\u0303\u0304 stacked",
    "Z\u0351\u036b\u0343\u036a\u0302\u036b\u033d\u034f\u0334\u0319\u0324\u031e\u0349\u035a\u032f\u031e\u0320\u034dalgo",
]

SCRIPTS = [
    "Ελληνικά γράμματα",
    "ΣΊΣΥΦΟΣ",
    "ᾼ ᾳ α\u0345 b\u0345c",
    "Русский текст",
    "ЁЖИК",
    "Українська ї є ґ",
    "العربية",
    "مرحبا بالعالم",
    "עברית",
    "שָׁלוֹם",
    "हिन्दी",
    "नमस्ते दुनिया",
    "ภาษาไทย",
    "สวัสดีชาวโลก",
    "中文",
    "一只猫的照片",
    "漢字かな交じり文",
    "日本語のテキスト",
    "ひらがな カタカナ",
    "ｶﾀｶﾅ halfwidth",
    "한국어",
    "고양이 사진",
    "\u1100\u1161\u11a8 conjoining jamo",
    "Ⴀ ⴀ Georgian",
    "Ꭰ ꭰ Cherokee",
    "ᚠᚢᚦ runes",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝐛𝐨𝐥𝐝",
    "ⓐⓑⓒ Ⓐ",
    "𐐀 𐐨 Deseret",
    "ꓐꓑ Lisu",
    "𑀅 Brahmi",
]

NUMBERS = [
    "x² + y³",
    "½ ¼ ¾",
    "Ⅻ ⅻ Ⅳ",
    "① ② ⑩ ⑳",
    "٣٤٥ Arabic-Indic",
    "۱۲۳ Extended Arabic-Indic",
    "३४५ Devanagari",
    "๑๒๓ Thai",
    "三 十 百 千 万",
    "〇 〡 〢",
    "１２３ full-width digits",
    "𝟏𝟐𝟑 math digits",
    "⁰¹²³⁴ ₀₁₂",
    "🄁 🄂",
    "𒐀 cuneiform numeric",
    "Ⅰ.Ⅱ.Ⅲ",
    "12345678901234567890",
    "1e-10",
    "0xDEADBEEF",
    "v1.2.3-rc.4",
]

EMOJI = [
    "😀",
    "a photo of 🐱",
    "🐱🐶🐭",
    "👍🏽",
    "👩‍💻",
    "👨‍👩‍👧‍👦",
    "🏳️‍🌈",
    "🇫🇷 🇯🇵 🇺🇸",
    "❤️",
    "☕",
    "🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉",
    "1️⃣ #️⃣",
    "🧑🏿‍🤝‍🧑🏻",
    "emoji😀glued",
    "🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f",
]

MOJIBAKE = [
    "cafÃ©",
    "âœ” No problems",
    "Ã¼ber",
    "The Mona Lisa doesnâ€™t have eyebrows.",
    "&macr;\\_(ã\x83\x84)_/&macr;",
    "voilÃ\xa0le travail",
    "Ð ÑƒÑÑÐºÐ¸Ð¹",
    "à¤¹à¤¿à¤¨à¥\x8dà¤¦à¥€",
    "ï»¿BOM mojibake",
    "Ã\x83Â©",
]

FULL_WIDTH = [
    "ＬＯＵＤ　ＮＯＩＳＥＳ",
    "ｆｕｌｌｗｉｄｔｈ",
    "Ｈｅｌｌｏ，ｗｏｒｌｄ！",
    "（括弧）【かっこ】",
    "ｄｏｎ＇ｔ",
]

URLS_AND_CODE = [
    "https://example.com/path?q=1&lang=en#frag",
    "http://example.com/a%20b",
    "user@example.com",
    "www.openai.com/research/clip",
    "def f(x): return x**2",
    "if (a && b || !c) { return; }",
    "print('hello, world')",
    'json {"key": [1, 2.5, null]}',
    "SELECT * FROM t WHERE id = 42;",
    "C:\\Users\\name\\file.txt",
    "<div class=\"a\">text</div>",
    "snake_case camelCase PascalCase kebab-case",
    "__init__.py",
    "~/.bashrc && echo $PATH",
]

LONG = [
    "a photo of a cat " * 30,
    "word " * 75,
    "word " * 74,
    "word " * 76,
    "x" * 300,
    "supercalifragilisticexpialidocious" * 5,
    "pneumonoultramicroscopicsilicovolcanoconiosis",
    "Llanfairpwllgwyngyllgogerychwyrndrobwllllantysiliogogogoch",
    "😀" * 40,
    "漢" * 100,
    "1234567890" * 10,
    "The quick brown fox jumps over the lazy dog. " * 12,
    "ab" * 200,
    "!" * 500,
    "a " + "é" * 80,
]

CORPUS: list[str] = (
    BASICS
    + EMPTY_AND_SPACE
    + CONTROL_CHARS
    + HTML
    + QUOTES_AND_CONTRACTIONS
    + SPECIAL_TOKENS
    + LATIN_DIACRITICS
    + SCRIPTS
    + NUMBERS
    + EMOJI
    + MOJIBAKE
    + FULL_WIDTH
    + URLS_AND_CODE
    + LONG
)

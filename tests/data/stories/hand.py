"""Hard cases of story identity, written by hand (see build_pairs.py).

HAND: (kind, (title_a, text_a), (title_b, text_b)); kind "hand_same" is one story,
"hand_different" two. BOILERPLATE: long paragraphs that publishers put under every story.
"""

from __future__ import annotations

BOILERPLATE = (
    "North Korea has been banned from conducting ballistic missile and nuclear tests by the "
    "United Nations Security Council, which has imposed sanctions on the country since 2006. "
    "Pyongyang says its weapons programmes are needed to defend itself against what it calls "
    "hostile policies of the United States and its allies, including South Korea and Japan. "
    "The two Koreas remain technically at war because the 1950-53 Korean War ended in an "
    "armistice rather than a peace treaty, and tens of thousands of American troops are "
    "stationed in the South. Talks between Washington and Pyongyang have been stalled since a "
    "summit in Hanoi collapsed without an agreement, and the North has since rejected offers "
    "of dialogue while expanding its arsenal of short-range and intercontinental missiles.",
    "We are an independent, reader-funded newsroom. Our journalism is free to read because "
    "thousands of readers choose to support it every month. Unlike many others, we have no "
    "shareholders and no billionaire owner, which means we can report without fear or favour "
    "and hold power to account. Every contribution, however big or small, powers our reporting "
    "and sustains our future. If you are able to, please consider supporting us today with a "
    "monthly gift: it takes less than a minute, and you can cancel at any time. You can also "
    "share our stories with friends and family, follow our reporters on social media, and tell "
    "us what you think of our coverage through the feedback form on our website.",
    "This article has been provided by our wire service partners and is published here "
    "unedited as part of our syndication agreement. Views expressed in syndicated content are "
    "those of the original publisher and do not necessarily reflect the editorial position of "
    "this website or its parent company. Readers who notice an error are encouraged to contact "
    "the corrections desk, which reviews every report within one business day and publishes "
    "corrections at the foot of the affected article. Images accompanying the article may have "
    "been supplied by the agency or by third-party photographers under licence, and may not be "
    "reproduced without written permission from the copyright holder.",
    "Russia launched its full-scale invasion of Ukraine in February 2022, the largest attack "
    "on a European state since the second world war. Tens of thousands of soldiers and "
    "civilians have been killed on both sides and millions of Ukrainians have fled abroad or "
    "been displaced within the country. Moscow occupies about a fifth of Ukrainian territory, "
    "including Crimea, which it annexed in 2014. Western governments have supplied Kyiv with "
    "weapons, air defence systems and financial aid, and have imposed successive rounds of "
    "sanctions on Russian banks, energy exports and officials close to the Kremlin.",
)

_LAUNCH = (
    "North Korea fired {n} short-range ballistic missiles into the sea off its east coast on "
    "{day}, South Korea's Joint Chiefs of Staff said, the latest in a series of weapons tests "
    "this year. The missiles were launched from near {place} at around {time} a.m. and flew "
    "about {km} km before splashing down outside Japan's exclusive economic zone, the military "
    "said. Japan's defence ministry confirmed the launch and said there were no reports of "
    "damage to ships or aircraft. The United States condemned the test and urged Pyongyang to "
    "return to talks."
)


def launch(n: str, day: str, place: str, time: str, km: str) -> tuple[str, str]:
    title = f"North Korea fires {n} ballistic missiles into sea, Seoul says"
    return title, _LAUNCH.format(n=n, day=day, place=place, time=time, km=km)


_QUAKE = (
    "A magnitude {mag} earthquake struck off the coast of {place} on {day}, the {agency} said, "
    "shaking buildings and prompting residents to flee into the streets. The quake hit at a "
    "depth of {depth} km, and authorities said {dead} people had been killed and dozens more "
    "injured. A tsunami warning was issued and later lifted. Rescue teams were searching "
    "collapsed buildings in several towns near the epicentre, and power was cut to thousands "
    "of homes."
)


def _quake(mag: str, place: str, day: str, agency: str, depth: str, dead: str) -> tuple[str, str]:
    title = f"Magnitude {mag} earthquake strikes off {place}, {dead} dead"
    return title, _QUAKE.format(
        mag=mag, place=place, day=day, agency=agency, depth=depth, dead=dead
    )


_RATES = (
    "The central bank of {country} raised its benchmark interest rate by {bp} basis points to "
    "{rate}% on {day}, its {nth} increase this year, as policymakers tried to bring inflation "
    "back to target. Governor {gov} told a news conference that price pressures remained too "
    "strong and that further tightening could not be ruled out. Economists polled before the "
    "meeting had expected the move. The currency rose slightly after the announcement."
)


def _rates(country: str, bp: str, rate: str, day: str, nth: str, gov: str) -> tuple[str, str]:
    title = f"{country} central bank raises rates to {rate}% in {nth} hike this year"
    return title, _RATES.format(country=country, bp=bp, rate=rate, day=day, nth=nth, gov=gov)


_STRIKE = (
    "A drone strike on a residential building in {city} killed {dead} people and wounded "
    "{hurt} others overnight, regional governor {gov} said on {day}. Emergency workers pulled "
    "survivors from the rubble throughout the morning, and the governor said the death toll "
    "could rise. The air force said it had shot down most of the drones launched in the "
    "attack. Officials in Kyiv called for more air defence systems from Western allies."
)


def _strike(city: str, dead: str, hurt: str, gov: str, day: str) -> tuple[str, str]:
    return f"Drone strike on {city} apartment block kills {dead}", _STRIKE.format(
        city=city, dead=dead, hurt=hurt, gov=gov, day=day
    )


_SANCTIONS_A = (
    "Iran on Saturday denounced U.S. plans to announce new sanctions that could put further "
    "strain on the Islamic Republic's economy and have an impact on its most important trading "
    "partners including China. Iran's Foreign Ministry spokesperson said the imminent "
    "announcement was an assertion of extraterritorial sovereignty over every independent "
    "member state of the United Nations."
)

HAND: list[tuple[str, tuple[str, str], tuple[str, str]]] = [
    # --- another day's launch, another count, another place: never one story -------------
    ("hand_different", launch("two", "Tuesday", "Pyongyang", "7:10", "600"),
     launch("two", "Thursday", "Pyongyang", "7:10", "600")),
    ("hand_different", launch("two", "Tuesday", "Pyongyang", "7:10", "600"),
     launch("three", "Tuesday", "Pyongyang", "7:10", "600")),
    ("hand_different", launch("two", "Tuesday", "Pyongyang", "7:10", "600"),
     launch("two", "Tuesday", "Wonsan", "7:10", "600")),
    ("hand_different", launch("two", "Tuesday", "Pyongyang", "7:10", "600"),
     launch("two", "Tuesday", "Pyongyang", "6:45", "450")),
    ("hand_different", launch("three", "Sunday", "Sunan", "8:00", "350"),
     launch("four", "Wednesday", "Hamhung", "9:30", "800")),
    ("hand_different", _quake("6.1", "Sumatra", "Monday", "USGS", "10", "7"),
     _quake("6.4", "Sumatra", "Monday", "USGS", "10", "7")),
    ("hand_different", _quake("6.1", "Sumatra", "Monday", "USGS", "10", "7"),
     _quake("6.1", "Java", "Monday", "USGS", "10", "7")),
    ("hand_different", _quake("7.0", "Hokkaido", "Friday", "Japan Meteorological Agency", "40",
                              "3"),
     _quake("7.0", "Hokkaido", "Sunday", "Japan Meteorological Agency", "40", "3")),
    ("hand_different", _quake("5.8", "Crete", "Tuesday", "EMSC", "15", "2"),
     _quake("5.8", "Crete", "Tuesday", "EMSC", "15", "11")),
    ("hand_different", _rates("Brazil", "50", "11.25", "Wednesday", "third", "Gabriel Galipolo"),
     _rates("Brazil", "50", "11.75", "Wednesday", "fourth", "Gabriel Galipolo")),
    ("hand_different", _rates("Hungary", "25", "6.75", "Tuesday", "second", "Mihaly Varga"),
     _rates("Poland", "25", "6.75", "Tuesday", "second", "Adam Glapinski")),
    ("hand_different", _strike("Dnipro", "9", "31", "Serhiy Lysak", "Friday"),
     _strike("Dnipro", "12", "40", "Serhiy Lysak", "Saturday")),
    ("hand_different", _strike("Kharkiv", "4", "18", "Oleh Syniehubov", "Monday"),
     _strike("Odesa", "4", "18", "Oleh Kiper", "Monday")),
    ("hand_different", _strike("Zaporizhzhia", "3", "11", "Ivan Fedorov", "Thursday"),
     _strike("Zaporizhzhia", "3", "11", "Ivan Fedorov", "Sunday")),
    # the same template headline, another company and another sale (the corpus's Slack case)
    ("hand_different",
     ("Acme (NASDAQ:ACME) Insider Jane Roe Sells 1,500 Shares",
      "Acme (NASDAQ:ACME) insider Jane Roe sold 1,500 shares of the company's stock in a "
      "transaction on Friday, July 5th. The shares were sold at an average price of $31.20, "
      "for a total value of $46,800. Following the sale, the insider now directly owns "
      "120,000 shares of the company's stock, valued at about $3.7 million."),
     ("Acme (NASDAQ:ACME) Insider Jane Roe Sells 1,500 Shares",
      "Acme (NASDAQ:ACME) insider Jane Roe sold 1,500 shares of the company's stock in a "
      "transaction on Friday, June 28th. The shares were sold at an average price of $29.85, "
      "for a total value of $44,775. Following the sale, the insider now directly owns "
      "121,500 shares of the company's stock, valued at about $3.6 million.")),
    ("hand_different",
     ("Acme (NASDAQ:ACME) CFO Sells $1.2 Million in Stock",
      "Acme (NASDAQ:ACME) CFO John Smith sold 40,000 shares of the company's stock in a "
      "transaction on Monday, March 3rd. The stock was sold at an average price of $30.00, "
      "for a total transaction of $1,200,000. The sale was disclosed in a filing with the "
      "Securities and Exchange Commission."),
     ("Acme (NASDAQ:ACME) CEO Sells $2.4 Million in Stock",
      "Acme (NASDAQ:ACME) CEO Mary Jones sold 80,000 shares of the company's stock in a "
      "transaction on Monday, March 3rd. The stock was sold at an average price of $30.00, "
      "for a total transaction of $2,400,000. The sale was disclosed in a filing with the "
      "Securities and Exchange Commission.")),
    # the same speaker template, another speaker (the corpus's Air Force speeches)
    ("hand_different",
     ("Future of the Combat Air Force",
      "General Michael Hostage III speaks during the Air & Space Conference and Technology "
      "Exposition, Sept. 15, 2014 in Washington D.C."),
     ("Air Force Update",
      "Chief of Staff of the Air Force General Mark Welsh III speaks during the Air & Space "
      "Conference and Technology Exposition, Sept. 15, 2014 in Washington D.C.")),
    # another match, the same report template
    ("hand_different",
     ("Kirishima and Atamifuji remain tied for lead with two days to go",
      "Ozeki Kirishima and No. 15 maegashira Atamifuji both won on Friday to remain tied for "
      "the lead at 11-2 with two days remaining at the Kyushu Grand Sumo Tournament. Kirishima "
      "beat Hoshoryu with an arm throw, while Atamifuji pushed out Takayasu."),
     ("Kirishima and Atamifuji remain tied for lead with one day to go",
      "Ozeki Kirishima and No. 15 maegashira Atamifuji both won on Saturday to remain tied for "
      "the lead at 12-2 with one day remaining at the Kyushu Grand Sumo Tournament. Kirishima "
      "beat Kotonowaka with an arm throw, while Atamifuji forced out Daieisho.")),
    # same topic, same day, different reports
    ("hand_different",
     ("Iran condemns US plans to announce new sanctions", _SANCTIONS_A),
     ("US, Iran keep up hostile rhetoric ahead of new sanctions",
      "The United States and Iran exchanged defiant messages ahead of Monday's scheduled "
      "announcement of new US economic sanctions that could impact the Islamic Republic and "
      "Tehran's most important trading partners, including China. As the war neared six months "
      "old, the two sides were not exchanging fire but also not pursuing peace talks.")),
    ("hand_different",
     ("Iran condemns US plans to announce new sanctions", _SANCTIONS_A),
     ("US announces new sanctions on Iran's oil trade",
      "The United States on Monday announced new sanctions targeting Iran's oil exports and "
      "the Chinese refiners that buy them, Treasury Secretary Scott Bessent said at a news "
      "conference in Washington. The measures are aimed at cutting the Islamic Republic's "
      "revenue, he said, and will take effect immediately.")),
    ("hand_different",
     ("Hurricane Milton makes landfall in Florida as Category 3 storm",
      "Hurricane Milton made landfall near Siesta Key, Florida, on Wednesday evening as a "
      "Category 3 storm, bringing winds of 120 mph and a dangerous storm surge, the National "
      "Hurricane Center said. More than a million homes lost power."),
     ("Hurricane Milton weakens to Category 1 as it crosses Florida",
      "Hurricane Milton weakened to a Category 1 storm early on Thursday as it crossed central "
      "Florida toward the Atlantic, the National Hurricane Center said, after tearing through "
      "the Tampa Bay area overnight. More than three million homes lost power.")),
    ("hand_different",
     ("Ukraine says it shot down 45 of 60 Russian drones overnight",
      "Ukraine's air force said on Sunday it had shot down 45 of the 60 drones Russia launched "
      "overnight, as well as two cruise missiles. Debris damaged homes in the Kyiv region, "
      "officials said. There were no immediate reports of casualties."),
     ("Ukraine says it shot down 38 of 52 Russian drones overnight",
      "Ukraine's air force said on Monday it had shot down 38 of the 52 drones Russia launched "
      "overnight, as well as one cruise missile. Debris damaged homes in the Kyiv region, "
      "officials said. There were no immediate reports of casualties.")),
    ("hand_different",
     ("Gunmen kill 12 in attack on village in northern Nigeria",
      "Gunmen killed 12 people in an attack on a village in Zamfara state in northern Nigeria "
      "on Tuesday night, police said, the latest in a wave of raids by armed gangs known "
      "locally as bandits. The attackers arrived on motorcycles and set fire to homes."),
     ("Gunmen kill 12 in attack on village in northern Nigeria",
      "Gunmen killed 12 people in an attack on a village in Katsina state in northern Nigeria "
      "on Tuesday night, police said, the latest in a wave of raids by armed gangs known "
      "locally as bandits. The attackers arrived on motorcycles and set fire to homes.")),
    ("hand_different",
     ("Israel strikes Houthi targets in Yemen after missile attack",
      "Israeli warplanes struck Houthi targets at the port of Hodeidah in Yemen on Sunday, the "
      "military said, a day after the group fired a ballistic missile towards Tel Aviv. The "
      "Houthi-run health ministry said four people were killed."),
     ("Houthis fire missile at Israel, military says it was intercepted",
      "Yemen's Houthis fired a ballistic missile towards central Israel on Saturday, the "
      "Israeli military said, adding that it had been intercepted. Sirens sounded in Tel Aviv "
      "and residents ran to shelters. The group said it targeted an airport.")),
    # two stories, one long boilerplate paragraph, short story text
    ("hand_different",
     ("North Korea fires cruise missiles off west coast",
      "North Korea fired several cruise missiles off its west coast on Sunday, South Korea's "
      "military said.\n" + BOILERPLATE[0]),
     ("Kim Jong Un inspects new destroyer at Nampo shipyard",
      "Kim Jong Un inspected a new destroyer at the Nampo shipyard, state media KCNA said.\n"
      + BOILERPLATE[0])),
    ("hand_different",
     ("North Korea fires ballistic missile towards Sea of Japan",
      "North Korea fired a ballistic missile towards the Sea of Japan on Thursday, Japan's "
      "coast guard said.\n" + BOILERPLATE[0]),
     ("North Korea fires artillery shells near sea border",
      "North Korea fired about 200 artillery shells near the western sea border on Friday, "
      "Seoul's defence ministry said.\n" + BOILERPLATE[0])),
    ("hand_different",
     ("Our reporters' view: the week in climate",
      "Floods in southern Brazil displaced thousands this week.\n" + BOILERPLATE[1]),
     ("Our reporters' view: the week in politics",
      "The senate passed the budget bill late on Thursday.\n" + BOILERPLATE[1])),
    ("hand_different",
     ("Russian strike hits energy facility in Kharkiv region",
      BOILERPLATE[3] + "\nA Russian missile strike hit an energy facility in the Kharkiv "
      "region on Monday, cutting power to 20,000 homes."),
     ("Russian strike hits grain terminal in Odesa region",
      BOILERPLATE[3] + "\nA Russian missile strike hit a grain terminal in the Odesa region "
      "on Monday, damaging silos and a port crane.")),
    ("hand_different",
     ("Syndicated: Markets close higher on tech rally",
      "Stocks closed higher on Wednesday led by technology shares.\n" + BOILERPLATE[2]),
     ("Syndicated: Oil prices fall on demand worries",
      "Oil prices fell on Wednesday on worries about demand in China.\n" + BOILERPLATE[2])),
    # the boilerplate first, near-identical titles, a short story after it: the whole body
    # is nearly the same, only the facts after the boilerplate tell the stories apart
    ("hand_different",
     ("Our reporters' view: the week in climate",
      BOILERPLATE[1] + "\nFloods in southern Brazil displaced thousands this week, and the "
      "government declared a state of emergency."),
     ("Our reporters' view: the week in politics",
      BOILERPLATE[1] + "\nThe senate passed the budget bill late on Thursday after a marathon "
      "session of votes.")),
    ("hand_different",
     ("North Korea fires ballistic missile, Japan says",
      BOILERPLATE[0] + "\nNorth Korea fired a ballistic missile off its east coast, Japan's "
      "defence ministry said."),
     ("North Korea fires ballistic missile, Seoul says",
      BOILERPLATE[0] + "\nNorth Korea fired a ballistic missile off its west coast, South "
      "Korea's military said.")),
    ("hand_different",
     ("Syndicated: Markets close higher on tech rally",
      BOILERPLATE[2] + "\nStocks closed higher on Wednesday led by technology shares, with "
      "Nvidia up 4%."),
     ("Syndicated: Markets close higher on bank rally",
      BOILERPLATE[2] + "\nStocks closed higher on Tuesday led by bank shares, with JPMorgan "
      "up 3%.")),
    ("hand_different",
     ("Russian strike hits energy facility in Kharkiv region",
      BOILERPLATE[3] + "\nA Russian missile strike hit an energy facility in the Kharkiv "
      "region on Monday, cutting power to 20,000 homes."),
     ("Russian strike hits energy facility in Sumy region",
      BOILERPLATE[3] + "\nA Russian missile strike hit an energy facility in the Sumy region "
      "on Monday, cutting power to 20,000 homes.")),
    # --- one story, rewritten by hand -----------------------------------------------------
    # rewrites a desk makes of wire copy, each on the launch story
    ("hand_same", launch("two", "Tuesday", "Pyongyang", "7:10", "600"),
     ("Two ballistic missiles fired by North Korea into sea, Seoul says",
      _LAUNCH.format(n="two", day="Tuesday", place="Pyongyang", time="7:10", km="600").replace(
          "North Korea fired two short-range ballistic missiles into the sea off its east coast "
          "on Tuesday",
          "Two short-range ballistic missiles were fired by North Korea into the sea off its "
          "east coast on Tuesday"))),
    ("hand_same", launch("two", "Tuesday", "Pyongyang", "7:10", "600"),
     ("N. Korea launches 2 missiles",
      _LAUNCH.format(n="two", day="Tuesday", place="Pyongyang", time="7:10", km="600"))),
    ("hand_same", launch("two", "Tuesday", "Pyongyang", "7:10", "600"),
     ("North Korea fires two ballistic missiles into sea, Seoul says",
      _LAUNCH.format(n="two", day="Tuesday", place="Pyongyang", time="7:10", km="600")
      .replace("defence", "defense").replace("about 600 km", "about 600 kilometres (370 miles)"))),
    # a name for a name: the facts guard holds them apart (a miss, precision first)
    ("hand_same", launch("two", "Tuesday", "Pyongyang", "7:10", "600"),
     ("North Korea fires two ballistic missiles into sea, Seoul says",
      _LAUNCH.format(n="two", day="Tuesday", place="Pyongyang", time="7:10", km="600").replace(
          "South Korea's Joint Chiefs of Staff said", "Seoul's military said"))),
    ("hand_same", launch("two", "Tuesday", "Pyongyang", "7:10", "600"),
     ("North Korea fires two ballistic missiles into sea, Seoul says",
      _LAUNCH.format(n="two", day="Tuesday", place="Pyongyang", time="7:10", km="600").replace(
          "at around 7:10 a.m.", "at 0710 local time"))),  # another spelling of the time: missed
    ("hand_same", _strike("Dnipro", "9", "31", "Serhiy Lysak", "Friday"),
     ("Drone strike on Dnipro apartment block kills 9",
      "Emergency workers pulled survivors from the rubble throughout the morning, and the "
      "governor said the death toll could rise. " + _STRIKE.format(
          city="Dnipro", dead="9", hurt="31", gov="Serhiy Lysak", day="Friday").replace(
          " Emergency workers pulled survivors from the rubble throughout the morning, and the "
          "governor said the death toll could rise.", ""))),  # paragraphs in another order
    # each copy with its own photo caption (captions differ between publishers)
    ("hand_same",
     ("Drone strike on Dnipro apartment block kills 9",
      "Rescue workers search the rubble of a building in Dnipro, Ukraine, March 3, 2026. "
      "REUTERS/Valentyn Ogirenko\n" + _STRIKE.format(city="Dnipro", dead="9", hurt="31",
                                                      gov="Serhiy Lysak", day="Friday")),
     ("Drone strike on Dnipro apartment block kills 9 | World",
      _STRIKE.format(city="Dnipro", dead="9", hurt="31", gov="Serhiy Lysak", day="Friday")
      + "\nA woman cries near the damaged building in Dnipro on Friday. (File photo: AFP)")),
    ("hand_same",
     ("Iran condemns US plans to announce new sanctions", _SANCTIONS_A),
     ("Iran condemns US plans to announce new sanctions",
      "An Iranian missile system is displayed in Azadi Square in Tehran, Iran, July 30, 2026. "
      "Majid Asgaripour/WANA (West Asia News Agency) via REUTERS\n" + _SANCTIONS_A)),
    # the summary only, beside the whole story
    ("hand_same",
     ("Hurricane Milton makes landfall in Florida as Category 3 storm",
      "Hurricane Milton made landfall near Siesta Key, Florida, on Wednesday evening as a "
      "Category 3 storm, bringing winds of 120 mph and a dangerous storm surge, the National "
      "Hurricane Center said. More than a million homes lost power. Officials urged residents "
      "who had not evacuated to shelter in place until the storm passed. Governor Ron DeSantis "
      "said the state had deployed thousands of National Guard troops and rescue crews, and "
      "that fuel and water were being brought in by convoy. Forecasters warned of flash floods "
      "far inland as the storm crossed the peninsula overnight."),
     ("Hurricane Milton makes landfall in Florida as Category 3 storm - BBC News",
      "Hurricane Milton made landfall near Siesta Key, Florida, on Wednesday evening as a "
      "Category 3 storm.")),
    ("hand_same",
     ("Gunmen kill 12 in attack on village in northern Nigeria",
      "Gunmen killed 12 people in an attack on a village in Zamfara state in northern Nigeria "
      "on Tuesday night, police said, the latest in a wave of raids by armed gangs known "
      "locally as bandits. The attackers arrived on motorcycles and set fire to homes. "
      "Residents said the gunmen also abducted at least 20 women and children and stole "
      "cattle. The state governor condemned the attack and ordered security forces to pursue "
      "the attackers. Armed gangs have killed thousands of people in the northwest in recent "
      "years, and kidnappings for ransom have become common."),
     ("Gunmen kill 12 in attack on village in northern Nigeria",
      "Gunmen killed 12 people in an attack on a village in Zamfara state in northern Nigeria "
      "on Tuesday night, police said.")),
    ("hand_same", launch("two", "Tuesday", "Pyongyang", "7:10", "600"),
     ("North Korea fires two ballistic missiles into sea – Seoul | World",
      "SEOUL, May 9 (Yonhap) -- " + _LAUNCH.format(n="two", day="Tuesday", place="Pyongyang",
                                                   time="7:10", km="600")
      + "\n(Reporting by Hyonhee Shin; Editing by Ed Davies)")),
    ("hand_same", launch("three", "Sunday", "Sunan", "8:00", "350"),
     ("North Korea fires three ballistic missiles into sea, Seoul says - The Japan Times",
      _LAUNCH.format(n="three", day="Sunday", place="Sunan", time="8:00", km="350").replace(
          "The United States condemned the test and urged Pyongyang to return to talks.",
          "Washington condemned the launch and urged Pyongyang to come back to the table."))),
    ("hand_same", _quake("6.1", "Sumatra", "Monday", "USGS", "10", "7"),
     ("Magnitude 6.1 earthquake strikes off Sumatra – 7 dead",
      _QUAKE.format(mag="6.1", place="Sumatra", day="Monday", agency="USGS", depth="10",
                    dead="7")
      + " Indonesia's disaster agency said it was still assessing the damage.")),
    ("hand_same", _rates("Brazil", "50", "11.25", "Wednesday", "third", "Gabriel Galipolo"),
     ("Brazil central bank raises rates to 11.25% in third hike this year | Reuters",
      _RATES.format(country="Brazil", bp="50", rate="11.25", day="Wednesday", nth="third",
                    gov="Gabriel Galipolo").replace(
          " The currency rose slightly after the announcement.", ""))),
    ("hand_same", _strike("Dnipro", "9", "31", "Serhiy Lysak", "Friday"),
     ("Drone strike on Dnipro apartment block kills 9 - Kyiv",
      "KYIV (Reuters) - " + _STRIKE.format(city="Dnipro", dead="9", hurt="31",
                                           gov="Serhiy Lysak", day="Friday")
      + "\nThe post Drone strike on Dnipro apartment block kills 9 appeared first on "
      "Ukraine Today.")),
    ("hand_same",
     ("Iran condemns US plans to announce new sanctions", _SANCTIONS_A),
     ("Iran condemns US plans to announce new sanctions | World",
      "CAIRO/WASHINGTON: Iran on Saturday (Aug 22) denounced US plans to announce new "
      "sanctions that could put further strain on the Islamic Republic's economy and have an "
      "impact on its most important trading partners including China. Iran's Foreign Ministry "
      "spokesperson said the imminent announcement was an assertion of extraterritorial "
      "sovereignty over every independent member state of the United Nations.\n"
      "Source: Reuters/fs")),
    ("hand_same",
     ("Gunmen kill 12 in attack on village in northern Nigeria",
      "Gunmen killed 12 people in an attack on a village in Zamfara state in northern Nigeria "
      "on Tuesday night, police said, the latest in a wave of raids by armed gangs known "
      "locally as bandits. The attackers arrived on motorcycles and set fire to homes."),
     ("Gunmen kill 12 in attack on village in northern Nigeria - police",
      "Gunmen killed twelve people in an attack on a village in Zamfara state in northern "
      "Nigeria on Tuesday night, police said, the latest in a wave of raids by armed gangs "
      "known locally as bandits. The attackers arrived on motorcycles and set fire to homes. "
      "Reporting by Ahmed Kingimi; Editing by Alex Richardson")),
    ("hand_same",
     ("Ukraine says it shot down 45 of 60 Russian drones overnight",
      "Ukraine's air force said on Sunday it had shot down 45 of the 60 drones Russia launched "
      "overnight, as well as two cruise missiles. Debris damaged homes in the Kyiv region, "
      "officials said. There were no immediate reports of casualties."),
     ("Ukraine says it shot down 45 of 60 Russian drones overnight",
      "Ukraine's air force said on Sunday it had shot down 45 of the 60 drones Russia launched "
      "overnight, as well as two cruise missiles. Falling debris damaged several homes in the "
      "Kyiv region, officials said. There were no immediate reports of casualties.")),
    ("hand_same",
     ("Hurricane Milton makes landfall in Florida as Category 3 storm",
      "Hurricane Milton made landfall near Siesta Key, Florida, on Wednesday evening as a "
      "Category 3 storm, bringing winds of 120 mph and a dangerous storm surge, the National "
      "Hurricane Center said. More than a million homes lost power."),
     ("Hurricane Milton makes landfall in Florida as Category 3 storm - BBC News",
      "Hurricane Milton made landfall near Siesta Key, Florida, on Wednesday evening as a "
      "Category 3 storm, bringing winds of 120 mph and a dangerous storm surge, the National "
      "Hurricane Center said. More than a million homes lost power. Officials urged residents "
      "who had not evacuated to shelter in place until the storm passed.\n"
      "Join the mailing list")),
]  # fmt: skip

"""Calibration passages for int8 export: transcript-like text written for ragkit, no corpus or download needed.

The int8 export measures activation ranges and checks its own accuracy on these. Outlier channels in
transformer activations are a property of the model, not of the text, so a few varied passages suffice;
they mix speakers, timestamps, numbers, lists, short replies and long monologues like real chunks do.
"""

from __future__ import annotations

PASSAGES: tuple[str, ...] = (
    "Priya Nair: Okay, let's get started. The first item is the budget for the next quarter. We spent about "
    "forty percent of the hardware money already, mostly on the new microphones for the meeting rooms. "
    "Tom Becker: Right, and the remaining part should go to the annotation work, because without the "
    "transcripts we can't train anything. Priya Nair: Agreed. Can you send me the numbers by Friday?",
    "Host (00:01:12): Welcome back to the show. Today my guest spent ten years building supply chains for "
    "small farms in Kenya and Peru. Guest (00:01:30): Thanks for having me. The short version is that the "
    "farmers were never the problem. The problem was that nobody could see where the coffee went after it "
    "left the village, so nobody trusted the prices. Once we put the weights and the prices on a shared "
    "ledger, the middlemen had to compete, and incomes went up by about a third in two seasons.",
    "Interviewer: What was the hardest decision you made as a founder? Founder: Honestly, firing a friend. "
    "We had hired each other's friends in the first year, which felt great until the company had to change. "
    "He was a brilliant engineer for the product we had, and the wrong person for the product we needed. "
    "I waited six months too long, and the whole team paid for it.",
    "Professor Alvarez (12:04): So the key idea of gradient descent is that you don't need to solve the "
    "equation. You take a small step downhill, measure again, and take another step. The learning rate is "
    "the size of the step. Too large and you overshoot the valley, too small and you'll still be walking when "
    "the semester ends. Student (12:40): Is there a way to pick it automatically? Professor Alvarez: Yes, "
    "and that's what Adam and its cousins do, but they come with their own knobs.",
    "A: um so yeah I think the the remote control thing is basically done B: mm-hmm A: we just need the "
    "buttons to be bigger for older users B: yeah and maybe a speech interface C: speech is expensive "
    "though, it adds like three euros per unit A: okay B: but it's a selling point C: true, true",
    "Dr. Okafor: The trial enrolled 1,248 patients across 31 hospitals. The primary endpoint was "
    "thirty-day readmission, and it dropped from 18.2% to 14.9% in the intervention arm. Reporter: That "
    "sounds modest. Dr. Okafor: It is modest per patient, but across a health system that's thousands of "
    "fewer nights in hospital every year, and the intervention costs less than a follow-up phone call.",
    "Speaker 1 (03:15): The outage started at 2:47 in the morning when a certificate expired on the load "
    "balancer. Speaker 2 (03:22): Why didn't the monitoring catch it? Speaker 1: It did, but the alert went "
    "to a channel that nobody had watched since the reorganisation. We've moved it to the paging system, "
    "added a check that fails the deploy thirty days before expiry, and written the runbook.",
    "Marta: I grew up in a town of maybe four thousand people, and the library was the only building with "
    "heating on Sundays. So that's where I read everything: chemistry textbooks, detective novels, old "
    "National Geographic issues. Nobody told me what to read. I think that freedom is why I still love "
    "research: you follow whatever thread looks interesting and see where it goes.",
    "Chair: Next on the agenda, the zoning proposal for the river district. Councillor Reyes: I want it on "
    "the record that the residents were consulted only once, in August, when half of them were away. "
    "Chair: Noted. Councillor Lin: The flood maps were updated in 2023 and the plan still uses the old ones. "
    "I move that we postpone the vote until the planning office reruns the analysis.",
    "Alex Rivera (0:22:34): The telescope itself is the easy part. The hard part is the weather, the "
    "permits, and keeping a cryogenic camera at minus one hundred degrees on a mountain for ten years. "
    "Interviewer (0:23:01): And the data? Alex Rivera: About twenty terabytes a night, most of it empty "
    "sky. We keep everything, because the interesting object is usually in the frame nobody looked at.",
    "Coach: Okay team, two things from Saturday. One, we stopped talking in the second half. Two, the "
    "pressing was late every single time. Player: The pitch was terrible though. Coach: It was terrible for "
    "them too. Listen, I'm not angry, we won, but we won because their striker missed three chances.",
    "Narrator: In 1854, cholera killed more than five hundred people in ten days around Broad Street in "
    "London. John Snow mapped the deaths and noticed they clustered around a single water pump. He "
    "persuaded the parish to remove the handle. The outbreak was already declining, historians point out, "
    "but the map became one of the founding documents of epidemiology.",
    "User researcher: When we asked people how they search their old meeting notes, almost everyone said "
    "'I don't'. They remember who said something and roughly when, but not the words. So they scroll. "
    "Product manager: So search by speaker and date matters more than better keyword matching? User "
    "researcher: For this group, yes, and they want to jump straight to the moment in the recording.",
    "Chef Dubois (05:40): You want the butter cold, straight from the fridge, cut into cubes. If it melts "
    "into the flour, you get a biscuit, not a pastry. Rest the dough for at least an hour. Host (06:02): And "
    "if I'm in a hurry? Chef Dubois: Then make something else! Pastry does not care about your schedule.",
    "Engineer: The latency budget is one second end to end. Python start-up takes about eighty "
    "milliseconds, loading the index thirty, embedding the query five, and the rest goes into ranking and "
    "printing. Reviewer: What happens on a cold cache? Engineer: The first run after a reboot reads the "
    "model from disk, which adds roughly two hundred milliseconds on this machine.",
    "Yes. No, I mean, yes, but not on Tuesday. Okay. Thanks. See you. Right. Sure, that works. Hmm. "
    "I'm not sure. Could you repeat that? Sorry, you cut out for a second. Can everyone hear me now?",
)


def calibration_texts() -> list[str]:
    """The passages alone and joined three at a time: index chunks run to ~230 word pieces, a passage to ~120."""
    joined = [" ".join((PASSAGES + PASSAGES)[i : i + 3]) for i in range(len(PASSAGES))]
    return [*PASSAGES, *joined]

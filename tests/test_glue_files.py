"""The processors on the real GLUE files in $GLUE_DIR: example counts, first and last rows."""

import pytest

from conftest import glue_dir
from processors import InputExample, get_processor

RTE_DEV_LAST = (
    'Danny Kennedy, Greenpeace campaigns director, said: "The burden of proof in the Scott '
    "Parkin expulsion case lies morally with the Commonwealth, to prove that he is a danger. "
    "When the Government brought in anti-terror legislation, they promised the public that "
    "these laws would only be used to confront a real and present risk of a terrorist attack, "
    "not a sweep-all approach against citizens. Peace is not terrorism. Peace is not a threat "
    "to national security. No democratic government should expel a foreign citizen because "
    '[it] opposes his political opinions."')
RTE_TEST_LAST = (
    "A Helios airliner (Boeing 737, flight HCY 522) with 115 passengers and 6 crew onboard has "
    "crashed into a mountain at 09:04 UTC (12:04 p.m. EEST) near Grammatiko, 40 kilometres "
    "(25 miles) north of Athens, while approaching the capital's airport. All on board "
    "perished. The plane was travelling from Larnaca, in the southeast of Cyprus "
    "(Greek:Kypros) and scheduled to arrive in Prague after a stop in Athens. In-flight events "
    "Immediately after take-off, the pilots reported a problem with the air conditioning "
    "system of the aircraft and requested to stay at a low altitude. A few minutes later, the "
    "pilots alerted the station that the problem had been fixed and requested permission to "
    "ascend. This information however has been denied by the Director of Helios Airways. As "
    "the plane approached Athens, all communication abruptly ceased, and the plane never "
    "issued a mayday distress signal. Two Greek F-16 military aircraft were assigned to "
    "observe the plane. The pilots of the F-16s noted that one airliner pilot appeared to be "
    "unconscious and the other was not in the cockpit.")

GLUE = [
    ("cola", "CoLA", "train", 8551,
     ("Our friends won't buy this analysis, let alone the next one we propose.", None, "1"),
     ("What all did you get for Christmas?", None, "1")),
    ("cola", "CoLA", "dev", 1043,
     ("The sailors rode the breeze clear of the rocks.", None, "1"),
     ("John talked to Bill about himself.", None, "1")),
    ("cola", "CoLA", "test", 1063,
     ("Bill whistled past the house.", None, None),
     ("A picture of himself frightened John.", None, None)),
    ("mrpc", "MRPC", "train", 3668,
     ('Amrozi accused his brother , whom he called " the witness " , of deliberately '
      'distorting his evidence .',
      'Referring to him as only " the witness " , Amrozi accused his brother of deliberately '
      'distorting his evidence .', "1"),
     ("The 30-year bond US30YT = RR rose 22 / 32 for a yield of 4.31 percent , versus 4.35 "
      "percent at Wednesday 's close .",
      "The 30-year bond US30YT = RR grew 1-3 / 32 for a yield of 4.30 percent , down from "
      "4.35 percent late Wednesday .", "0")),
    ("mrpc", "MRPC", "dev", 408,
     ("He said the foodservice pie business doesn 't fit the company 's long-term growth "
      "strategy .",
      '" The foodservice pie business does not fit our long-term growth strategy .', "1"),
     ("Ex-KGB agent Putin added that the Beatles were considered ' propaganda of an alien "
      "ideology ' .",
      "In Soviet times the Beatles ' music \" was considered propaganda of an alien "
      "ideology .", "1")),
    ("mrpc", "MRPC", "test", 1725,
     ("PCCW 's chief operating officer , Mike Butcher , and Alex Arena , the chief financial "
      "officer , will report directly to Mr So .",
      "Current Chief Operating Officer Mike Butcher and Group Chief Financial Officer Alex "
      "Arena will report to So .", None),
     ('Sobig.F spreads when unsuspecting computer users open file attachments in emails that '
      'contain such familiar headings as " Thank You ! , " " Re : Details " or " Re : That '
      'Movie . "',
      'The virus spreads when unsuspecting computer users open file attachments in emails '
      'that contain familiar headings like " Thank You ! " and " Re : Details " .', None)),
    ("sst-2", "SST-2", "train", 67349, ("hide new secretions from the parental units ", None, "0"),
     ("this new jangle of noise , mayhem and stupidity must be a serious contender for the "
      "title . ", None, "0")),
    ("sst-2", "SST-2", "dev", 872, ("it 's a charming and often affecting journey . ", None, "1"),
     ("looking aristocratic , luminous yet careworn in jane hamilton 's exemplary costumes , "
      "rampling gives a performance that could not be improved upon . ' ", None, "1")),
    ("sst-2", "SST-2", "test", 1821, ("uneasy mishmash of styles and genres .", None, None),
     ("dazzling and sugar-sweet , a blast of shallow magnificence that only sex , scandal , and "
      "a chorus line of dangerous damsels can deliver .", None, None)),
    ("sts-b", "STS-B", "train", 5749,
     ("A plane is taking off.", "An air plane is taking off.", "5.000"),
     ("Putin spokesman: Doping charges appear unfounded",
      "The Latest on Severe Weather: 1 Dead in Texas After Tornado", "0")),
    ("sts-b", "STS-B", "dev", 1500,
     ("A man with a hard hat is dancing.", "A man wearing a hard hat is dancing.", "5.000"),
     ("New video shows US police officers beating mentally-ill man",
      "New York police officer critically wounded in hatchet attack", "0")),
    ("sts-b", "STS-B", "test", 1379,
     ("A girl is styling her hair.", "A girl is brushing her hair.", None),
     ("South Korea declares end to MERS outbreak",
      "North Korea Delegation Meets With South Korean Officials", None)),
    ("rte", "RTE", "train", 2490,
     ("No Weapons of Mass Destruction Found in Iraq Yet.",
      "Weapons of Mass Destruction Found in Iraq.", "not_entailment"),
     ("Turkey is unlikely to become involved in, or allow U.S. forces to use Turkish territory "
      "in a Middle East war that does not threaten her territory directly.",
      "U.S. to use Turkish military bases.", "not_entailment")),
    ("rte", "RTE", "dev", 277,
     ("Dana Reeve, the widow of the actor Christopher Reeve, has died of lung cancer at age 44, "
      "according to the Christopher Reeve Foundation.", "Christopher Reeve had an accident.",
      "not_entailment"),
     (RTE_DEV_LAST, "Greenpeace director said that peace is terrorism.", "not_entailment")),
    ("rte", "RTE", "test", 3000,
     ("Mangla was summoned after Madhumita's sister Nidhi Shukla, who was the first witness in "
      "the case.", "Shukla is related to Mangla.", None),
     (RTE_TEST_LAST, "26 people died in an airplane crash.", None)),
    ("wnli", "WNLI", "train", 635,
     ("I stuck a pin through a carrot. When I pulled the pin out, it had a hole.",
      "The carrot had a hole.", "1"),
     ("Although they ran at about the same speed, Sue beat Sally because she had such a bad "
      "start.", "Sally had such a bad start.", "1")),
    ("wnli", "WNLI", "dev", 71,
     ("The drain is clogged with hair. It has to be cleaned.", "The hair has to be cleaned.",
      "0"),
     ("George got free tickets to the play, but he gave them to Eric, because he was not "
      "particularly eager to see it.", "Eric was not particularly eager to see it.", "0")),
    ("wnli", "WNLI", "test", 146,
     ("Maude and Dora had seen the trains rushing across the prairie, with long, rolling puffs "
      "of black smoke streaming back from the engine. Their roars and their wild, clear "
      "whistles could be heard from far away. Horses ran away when they came in sight.",
      "Horses ran away when Maude and Dora came in sight.", None),
     ("Edward dropped adhesive tape onto his window sill, and when he pulled the tape off, some "
      "of the glue was stuck on it.", "Some of the glue was stuck on the window sill.", None)),
]


@pytest.mark.parametrize("task,folder,split,count,first,last", GLUE,
                         ids=[f"{g[0]}-{g[2]}" for g in GLUE])
def test_glue_files(task, folder, split, count, first, last):
    examples = get_processor(task).get_examples(glue_dir(folder), split)
    assert len(examples) == count
    assert examples[0] == InputExample(f"{split}-0", *first)
    assert examples[-1] == InputExample(f"{split}-{count - 1}", *last)

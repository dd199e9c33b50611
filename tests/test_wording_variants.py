"""Wordings met in the dev corpus: each case states a phenomenon in a short made-up note and pins the
fact it must (or must not) produce. A rule added for one of these must keep its test here."""

from test_traps import finding, note


# --- imaging: equipment out of service, modality named beside a "no imaging" statement ----------------

def test_c_arm_down_today_is_landmark_technique(check):
    r = check(note("C7-T1 cervical interlaminar epidural. C-arm down today. Landmark and loss of resistance. "
                   "Dexamethasone 10 mg in 2 mL injected."))
    assert r.record.imaging == "none"
    assert r.code.cpt == "62320"


def test_fluoroscopy_named_as_an_aside_to_landmark_technique_is_not_guidance(check):
    r = check(note("L3-L4 interlaminar ESI. Guidance: none, landmark technique (patient weight exceeds the "
                   "fluoroscopy table limit). Methylprednisolone 80 mg in 2 mL injected."))
    assert r.record.imaging == "none"
    assert r.code.cpt == "62322"


def test_fluoroscopy_that_guided_the_needle_still_counts_beside_landmarks(check):
    r = check(note("L4-L5 interlaminar ESI. Landmarks palpated, then the needle was advanced under "
                   "fluoroscopy with AP and lateral views. Omnipaque 240 2 mL. Depo-Medrol 80 mg in 2 mL."))
    assert r.record.imaging == "fluoroscopy"
    assert r.code.cpt == "62323"


def test_guided_modality_outranks_one_merely_named(check):
    r = check(note("Ultrasound-guided L4-L5 interlaminar ESI. Fluoroscopy without contrast was not offered. "
                   "No contrast used. Triamcinolone 40 mg in 1 mL injected."))
    assert r.record.imaging == "ultrasound"
    assert r.code.cpt == "62322"


# --- contrast: allergies written in the narrative -----------------------------------------------------

def test_anaphylaxis_to_contrast_is_a_reason_not_a_use(check):
    r = check(note("L5-S1 interlaminar ESI under fluoroscopy. Documented anaphylaxis to iodinated contrast "
                   "and gadolinium; no contrast used. Dexamethasone 10 mg in 2 mL injected."))
    assert r.record.contrast.used is False
    assert r.record.contrast.omission_reason
    assert finding(r, "contrast").status == "met"


def test_drug_named_as_an_allergy_is_not_injectate(check):
    r = check(note("L4-L5 interlaminar ESI under fluoroscopy, Omnipaque 240 2 mL. Patient is allergic to "
                   "bupivacaine. Dexamethasone 10 mg in 2 mL injected."))
    assert [m.name for m in r.record.medications if m.name == "bupivacaine"] == []


# --- catheters: secured, infusing, a running rate; "not left in place" ----------------------------------

def test_catheter_secured_and_infusing_at_a_rate_is_indwelling(check):
    r = check(note("T7-T8 interlaminar epidural under fluoroscopy, Omnipaque 240 2 mL. 20G catheter threaded "
                   "5 cm, secured with a fixation device, 15 cm at skin. Bupivacaine 0.1% at 10 mL/hr."))
    assert r.record.catheter.indwelling is True
    assert r.code.cpt == "62325"


def test_catheter_withdrawn_and_not_left_in_place_is_single_injection(check):
    r = check(note("L5-S1 interlaminar epidural, landmark technique. A 20g catheter was threaded 3 cm; "
                   "methylprednisolone 80 mg with 5 mL saline given through it. The catheter was then "
                   "withdrawn. It was not left in place."))
    assert r.record.catheter.indwelling is False
    assert r.code.cpt == "62322"


# --- procedure family -----------------------------------------------------------------------------------

def test_lumbar_puncture_through_the_interlaminar_window_is_out_of_family(check):
    r = check("Fluoroscopy-guided lumbar puncture. Under fluoroscopic guidance the L3-L4 interlaminar space "
              "was localized. 20-gauge spinal needle, midline approach, into the thecal sac with clear CSF. "
              "Opening pressure 14 cm H2O.")
    assert r.code.cpt is None
    assert r.code.out_of_family == "lumbar_puncture"


def test_epidural_as_the_primary_surgical_anesthetic_is_anesthesia(check):
    r = check("Anesthetic plan: lumbar epidural anesthesia as the primary surgical anesthetic. Consent signed. "
              "L2-L3 midline, 17G Tuohy, LOR to saline. 19G catheter threaded. Surgical dosing: lidocaine 2% "
              "12 mL. Catheter removed at end of case.")
    assert r.code.out_of_family == "anesthesia"


def test_remote_labor_epidural_is_history(check):
    r = check(note("Interval history: remote epidural catheter for labor analgesia, tolerated.\n"
                   "Procedure: L5-S1 interlaminar ESI under fluoroscopy, Omnipaque 240 2 mL, Depo-Medrol 80 mg in 2 mL."))
    assert r.code.cpt == "62323"


def test_weeks_ago_makes_a_long_procedure_phrase_historical(check):
    r = check("Follow-up visit. A right paramedian L5-S1 interlaminar epidural steroid injection under "
              "fluoroscopy was done 10 weeks ago and gave about 60% relief. Plan: repeat injection.")
    assert r.record is None or r.code.cpt is None
    assert r.record is None or r.record.imaging is None


# --- consent --------------------------------------------------------------------------------------------

def test_bare_consent_word_with_signed_counts(check):
    r = check("Consent -- obtained, signed, witnessed. L4-L5 interlaminar ESI under fluoroscopy.")
    assert r.record.consent is True


def test_consent_to_be_signed_later_does_not_count(check):
    r = check("L4-L5 interlaminar ESI under fluoroscopy. Procedure consent to be signed on the day of the "
              "procedure.")
    assert r.record.consent is False


def test_consent_survives_a_discussion_of_options(check):
    r = check("Risks, benefits and alternatives were discussed, including the option of waiting, and written "
              "informed consent was obtained. C6-C7 interlaminar ESI, landmark technique.")
    assert r.record.consent is True


# --- laterality, post-procedure status, indication context ------------------------------------------------

def test_bilat_abbreviation_and_l_greater_than_r_are_bilateral(check):
    assert check("HX: bilat L5 radicular pain. Caudal ESI under fluoro.").record.laterality == "bilateral"
    assert check("Leg pain L>R. Caudal ESI under fluoro.").record.laterality == "bilateral"


def test_approach_side_beats_a_weak_side_cue(check):
    r = check("Right total knee arthroplasty. L3-L4 epidural catheter, left paramedian approach, for "
              "postoperative analgesia.")
    assert r.record.laterality == "left"


def test_operated_side_is_used_when_nothing_else_is_written(check):
    r = check("Right total knee arthroplasty. L3-L4 epidural catheter for postoperative analgesia, "
              "left in place.")
    assert r.record.laterality == "right"


def test_vital_signs_were_stable_is_a_post_procedure_assessment(check):
    r = check("L4-L5 interlaminar ESI under fluoroscopy. Vital signs were stable and the patient was admitted "
              "to the surgical floor.")
    assert r.record.post_procedure_assessment is True


def test_ambulatory_pump_is_not_the_patients_status(check):
    r = check("L3-L4 epidural catheter, landmark technique, left in place. Infusion via ambulatory CADD pump.")
    assert r.record.post_procedure_assessment is False


def test_ct_chest_showing_a_mass_is_imaging_correlation(check):
    r = check("CT chest shows a destructive lesion of the right 9th rib, corresponding to the pain. "
              "T8-T9 epidural catheter under fluoroscopy, left in place.")
    assert r.record.imaging_correlation is True


def test_oral_drug_in_a_failed_therapy_sentence_is_not_injectate(check):
    r = check(note("Pain despite 12 weeks of oral and then subcutaneous opioids (current subcutaneous "
                   "hydromorphone infusion), dexamethasone and acetaminophen. L3-L4 epidural catheter, landmark. "
                   "Bolus: bupivacaine 0.125% 5 mL."))
    assert "dexamethasone sodium phosphate" not in [m.name for m in r.record.medications]


# --- second round of dev wordings -------------------------------------------------------------------------

def test_modality_deliberately_avoided_is_not_used(check):
    r = check(note("Fluoroscopy and contrast deliberately avoided in pregnancy. C7-T1 interlaminar ESI, landmark "
                   "technique. Dexamethasone 10 mg in 1 mL injected."))
    assert r.record.imaging == "none"
    assert r.record.contrast.used is not True
    assert r.code.cpt == "62320"


def test_c_arm_available_but_unused_in_a_landmark_note(check):
    r = check(note("L4-L5 interlaminar ESI without imaging.\nA C-arm was available in the suite but was not used; "
                   "landmark technique with loss of resistance. Dexamethasone 10 mg in 1 mL injected."))
    assert r.record.imaging == "none"


def test_nothing_was_left_in_place_is_single_injection(check):
    r = check(note("Caudal epidural under fluoroscopy, Omnipaque 240 2 mL. A catheter was threaded to L5-S1, "
                   "Kenalog 80 mg in 6 mL injected; the catheter was withdrawn; nothing was left in place."))
    assert r.record.catheter.indwelling is False
    assert r.code.cpt == "62323"


def test_caudal_levels_are_the_hiatus_not_the_catheter_tip(check):
    r = check(note("Caudal epidural via the sacral hiatus under fluoroscopy. Catheter steered to L4-L5 and then "
                   "removed intact. Depo-Medrol 80 mg in 2 mL."))
    assert r.record.levels == ["sacral hiatus"]


def test_postop_catheter_separate_from_the_surgical_anesthetic_is_in_family(check):
    r = check("Acute Pain Service - post-op epidural catheter (separate from surgical anesthetic).\n"
              "T9-T10 midline, LOR saline, 20g catheter 5 cm in space, secured; infusion 0.1% bupivacaine 8 mL/h.")
    assert r.code.cpt == "62324"


def test_postop_analgesia_by_iv_pca_leaves_the_epidural_an_anesthetic(check):
    r = check("Anesthesia record. Combined general + thoracic epidural anesthesia for laparotomy. T9-T10, LOR, "
              "catheter threaded; 0.25% bupivacaine 8 mL intraop. Catheter removed at end of case. "
              "Postop analgesia by IV PCA.")
    assert r.code.out_of_family == "anesthesia"


def test_no_procedure_performed_today(check):
    r = check("Follow-up visit. Left L5-S1 interlaminar epidural steroid injection gave 70% relief.\n"
              "Plan: repeat ILESI in 3 weeks. No procedure performed today.")
    assert r.code.cpt is None


def test_discussed_a_catheter_is_an_option(check):
    r = check("P: Discussed a thoracic epidural catheter with continuous infusion as a bridge; will schedule "
              "placement next week.")
    assert r.code.cpt is None


def test_follow_up_after_an_injection_is_history(check):
    r = check("Reason for visit: Follow-up after lumbar epidural steroid injection.\nDoing well.")
    assert r.code.cpt is None


def test_pain_scores_with_the_scale_in_brackets_or_after(check):
    r = check("Pain score (NRS 0-10): 6\nL4-L5 interlaminar ESI under fluoroscopy.\nPain score (NRS 0-10): 1")
    assert (r.record.pain_scores.pre, r.record.pain_scores.post) == (6, 1)
    r = check("Pain before the procedure was 6 on a 0 to 10 scale. L4-L5 ILESI under fluoroscopy.")
    assert r.record.pain_scores.pre == 6


def test_pain_today_is_before_even_after_an_unrelated_after(check):
    r = check("Contrast anaphylaxis (ED visit after a contrast CT). Pain today 9/10. Caudal ESI under fluoro.")
    assert r.record.pain_scores.pre == 9
    assert r.record.pain_scores.post is None


def test_symptom_duration_is_not_the_therapy_duration(check):
    r = check("HX: LEFT LEG PAIN X 4 MONTHS, FAILED 10 WEEKS PT AND NSAIDS. L4-L5 ILESI UNDER FLUORO.")
    assert r.record.conservative_therapy.weeks == 10


def test_illness_onset_ago_is_not_a_therapy_duration(check):
    r = check("Herpes zoster, rash onset 10 days ago, pain despite valacyclovir and gabapentin. "
              "T8-T9 interlaminar ESI, landmark.")
    assert r.record.conservative_therapy.weeks is None


def test_non_contrast_mri_and_unstocked_agent_are_not_contrast_use(check):
    r = check("A non-contrast MRI shows L4-L5 stenosis. Iodinated contrast allergy; gadolinium not stocked. "
              "L4-L5 ILESI under fluoroscopy, no contrast.")
    assert r.record.contrast.used is False


def test_contrast_header_followed_by_an_allergy_is_not_use(check):
    r = check("L4-L5 ILESI under fluoroscopy.\nCONTRAST: Documented anaphylaxis to iodinated contrast; no contrast "
              "was injected.")
    assert r.record.contrast.used is False


def test_in_family_epidural_without_an_approach_word_is_interlaminar(check):
    r = check("18g Tuohy left paramedian into the lumbar epidural space with LOR under fluoroscopy AP and lateral. "
              "Depo-Medrol 80 mg in 2 mL.")
    assert r.record.approach == "interlaminar"


def test_run_together_export_levels_inside_the_indication(check):
    r = check("PROCEDURE NOTE thoracic epidural catheter. INDICATION: cancer pain. TECHNIQUE landmark, 18g Tuohy "
              "right paramedian T5-T6, LOR to saline, catheter left in place.")
    assert r.record.levels == ["T5-T6"]


def test_post_header_with_only_a_pain_score_is_not_a_disposition(check):
    body = "L4-L5 ILESI under fluoroscopy. No complications.\n"
    assert check(body + "Post: NRS 4/10").record.post_procedure_assessment is False
    assert check(body + "Post: NRS 2/10, BP 120/70, back to room.").record.post_procedure_assessment is True


# --- round 4 (dev_i..l): drop-downs, prior-injection scores, trauma wording, nested labels ----------------

def no_scores(body: str) -> str:
    """Like note(), without the base text's own pain scores."""
    return f"Informed consent was obtained. {body}\nThere were no complications. Discharged home."


def test_bracketed_drop_down_values_are_read(check):
    r = check(no_scores("L5-S1 interlaminar ESI under fluoroscopy. Conservative therapy: physical therapy x [6] weeks.\n"
                   "Pre-procedure pain (NRS): [8]/10\nSkin anesthetized with [3] mL [1% lidocaine]. "
                   "Depo-Medrol 80 mg injected.\nPost-procedure pain (NRS): [3]/10"))
    assert (r.record.pain_scores.pre, r.record.pain_scores.post) == (8, 3)
    assert r.record.conservative_therapy.weeks == 6
    lidocaine = next(m for m in r.record.medications if m.name == "lidocaine")
    assert lidocaine.volume_ml == 3 and lidocaine.concentration == "1%"


def test_of_10_scores_and_afterward(check):
    r = check(no_scores("L4-L5 interlaminar ESI under fluoroscopy. Kenalog 80 mg (2 mL) injected. "
                   "Pain scores: 8 of 10 before the procedure and 2 of 10 afterward."))
    assert (r.record.pain_scores.pre, r.record.pain_scores.post) == (8, 2)


def test_vas_in_millimetres(check):
    r = check(no_scores("C7-T1 interlaminar ESI under fluoroscopy. Dexamethasone 10 mg injected.\n"
                   "Pain: VAS 65 mm pre, 30 mm post (0-100 mm VAS)"))
    assert (r.record.pain_scores.pre, r.record.pain_scores.post) == (65, 30)


def test_scores_of_the_prior_injection_are_not_todays(check):
    r = check(no_scores("Repeat injection: prior L5-S1 ILESI approximately 7 months ago reduced pain from 8/10 to "
                   "2/10 lasting 5 months.\nPre-procedure pain: 7/10\nL5-S1 interlaminar ESI under fluoroscopy. "
                   "Depo-Medrol 80 mg injected.\nPost-procedure pain: 3/10"))
    assert (r.record.pain_scores.pre, r.record.pain_scores.post) == (7, 3)


def test_prior_injection_then_todays_score_in_one_sentence(check):
    r = check(no_scores("Prior ILESI 6 months ago helped; pain today 6/10. L4-L5 interlaminar ESI under fluoroscopy. "
                   "Depo-Medrol 80 mg injected."))
    assert r.record.pain_scores.pre == 6


def test_pelvic_fracture_catheter_is_trauma_pain(check):
    r = check(note("Indication: analgesia for pelvic ring fractures after a motor vehicle collision.\n"
                   "L2-L3 interlaminar epidural catheter under fluoroscopy, Omnipaque 240 3 mL. Catheter left in "
                   "place; ropivacaine 0.2% at 8 mL/hr."))
    assert r.record.pain_context == "trauma"
    assert finding(r, "conservative_therapy").status == "not_applicable"


def test_acute_zoster_told_with_its_onset_is_still_current(check):
    r = check(note("The patient has acute herpes zoster of the right T7 dermatome, rash onset eleven days ago.\n"
                   "T7-T8 interlaminar ESI without fluoroscopy, landmark technique. Dexamethasone 10 mg injected."))
    assert r.record.pain_context == "herpes_zoster"
    assert finding(r, "conservative_therapy").status == "not_applicable"


def test_list_under_an_allergies_header_stays_allergies(check):
    r = check(note("ALLERGIES:\n- IODINATED CONTRAST: HIVES\n- MORPHINE: ITCHING\n\n"
                   "L4-L5 interlaminar ESI under fluoroscopy, no contrast given due to allergy. "
                   "Dexamethasone 10 mg in 1 mL injected."))
    assert [m.name for m in r.record.medications if m.category not in ("saline", "contrast")] == [
        "dexamethasone sodium phosphate"]


def test_oral_formulation_suffix_is_not_injectate(check):
    r = check(note("On escalating opioids (oxycodone ER, hydromorphone IR) for 2 months. L4-L5 interlaminar ESI "
                   "under fluoroscopy. Kenalog 80 mg injected."))
    assert "hydromorphone" not in [m.name for m in r.record.medications]


def test_infusion_rate_after_the_mixture_is_its_rate(check):
    r = check(note("L2-L3 interlaminar epidural catheter under fluoroscopy, catheter left in place.\n"
                   "Infusion: Ropivacaine 0.1% + fentanyl 2 mcg/mL; basal 6 mL/hr, demand 4 mL"))
    fentanyl = next(m for m in r.record.medications if m.name == "fentanyl")
    assert fentanyl.rate_ml_hr == 6
    assert finding(r, "medication_dose").status == "met"


def test_bare_contrast_word_beside_an_omission_is_not_a_use(check):
    r = check(note("Because of the anaphylactic contrast history, the procedure was done under fluoroscopy "
                   "without contrast. L4-L5 interlaminar ESI. Dexamethasone 10 mg injected."))
    assert r.record.contrast.used is False


def test_misspelled_complications_still_count(check):
    r = check(note("L4-L5 interlaminar ESI under fluoroscopy. Kenalog 80 mg injected. No complicaitons."))
    assert finding(r, "complications").status == "met"


# --- round 5 (dev_m..p) ----------------------------------------------------------------------------------

def test_procedure_header_family_outranks_an_epidural_discussed_and_deferred(check):
    r = check(note("Procedure: bilateral L4-L5 medial branch blocks under fluoroscopy.\nThe patient has axial pain "
                   "only; a caudal ESI was briefly discussed and deferred. Bupivacaine 0.5% 0.5 mL at each target."))
    assert r.code.cpt is None and r.code.out_of_family == "facet"


def test_patient_consents_is_consent(check):
    r = check("Risks, hematoma and infection discussed; patient consents, form signed. L4-L5 interlaminar ESI "
              "under fluoroscopy. Kenalog 80 mg injected. No complications. Discharged home.")
    assert r.record.consent is True


def test_mri_finding_side_is_not_the_symptom_side(check):
    r = check(note("Procedure: RIGHT L4-L5 interlaminar ESI under fluoroscopy.\nMRI: bilateral L4 foraminal "
                   "narrowing.\nKenalog 80 mg injected."))
    assert r.record.laterality == "right"


def test_abbreviated_side_before_si_joint(check):
    r = check(note("PROC: R SI JOINT INJECTION, fluoro guided. Kenalog 40 mg injected."))
    assert r.record.laterality == "right"


def test_an_age_is_not_a_duration(check):
    r = check(note("82-year-old with right L5 radiculopathy despite physical therapy. L4-L5 interlaminar ESI under "
                   "fluoroscopy. Kenalog 80 mg injected."))
    assert r.record.conservative_therapy.weeks is None


def test_study_finding_on_a_hard_wrapped_line(check):
    r = check(note("Indication: right T9 radicular pain. CT chest: right T9 rib and vertebral\nbody metastasis "
                   "into the right T9 foramen.\nT9-T10 interlaminar ESI under fluoroscopy. Kenalog 80 mg injected."))
    assert r.record.imaging_correlation is True


def test_unremarkable_study_is_not_a_correlating_finding(check):
    r = check(note("Cervical MRI showed no structural lesion to explain her symptoms. C7-T1 interlaminar ESI under "
                   "fluoroscopy. Dexamethasone 10 mg injected."))
    assert r.record.imaging_correlation is False
    r = check(note("MRI showed no central stenosis but a left L5-S1 herniation. L5-S1 interlaminar ESI under "
                   "fluoroscopy. Kenalog 80 mg injected."))
    assert r.record.imaging_correlation is True


def test_racz_with_hypertonic_saline_is_adhesiolysis(check):
    r = check(note("Percutaneous epidural adhesiolysis (Racz procedure) via caudal approach under fluoroscopy. "
                   "Racz catheter steered to the left S1 root; 10% hypertonic saline 10 mL infused."))
    assert r.code.out_of_family == "adhesiolysis"


def test_reaction_to_contrast_told_in_narrative_is_the_omission_reason(check):
    r = check(note("He has an anaphylactoid reaction (urticaria) to iodinated contrast during a prior cardiac "
                   "catheterization. Therefore no contrast was administered. L4-L5 interlaminar ESI under "
                   "fluoroscopy. Kenalog 80 mg injected."))
    assert r.record.contrast.used is False and r.record.contrast.omission_reason
    assert finding(r, "contrast").status == "met"


def test_contrast_field_with_dot_leaders(check):
    r = check(note("L4-L5 interlaminar ESI, landmark technique.\nContrast ............. none (no imaging)\n"
                   "Kenalog 80 mg injected."))
    assert r.record.contrast.used is False
    r = check(note("L4-L5 interlaminar ESI under fluoroscopy.\nContrast: no intravascular uptake.\n"
                   "Kenalog 80 mg injected."))
    assert r.record.contrast.used is True


def test_cancelled_procedure_has_no_imaging(check):
    r = check("Scheduled: L4-L5 ILESI, left paramedian, fluoro.\nProcedure cancelled today: anticoagulant not "
              "held. No injection performed.")
    assert r.code.out_of_family == "no_procedure"
    assert r.record.imaging is None


def test_modality_named_under_consent_is_not_the_guidance(check):
    r = check("Consent: risks and the limits of ultrasound compared with fluoroscopy were explained; informed "
              "consent obtained.\nUltrasound-guided C7-T1 interlaminar ESI. Dexamethasone 10 mg injected. "
              "No complications. Discharged home.")
    assert r.record.imaging == "ultrasound"
    assert r.code.cpt == "62320"


# --- round 6 (dev_q..t): speech-recognition exports, checkboxes, blank labels on a run-together line -----

def test_spoken_numbers_are_read_and_quoted_as_written(check):
    text = ("LUMBAR EPIDURAL STEROID INJECTION consent obtained pain today eight out of ten under fluoroscopy "
            "at L four five via left para median approach one percent lidocaine two CC to skin then "
            "dexamethasone ten milligrams one CC injected no complications pain after two out of ten discharged home")
    r = check(text)
    assert r.record.levels == ["L4-L5"] and r.code.cpt == "62323"
    assert (r.record.pain_scores.pre, r.record.pain_scores.post) == (8, 2)
    dex = next(m for m in r.record.medications if m.name == "dexamethasone sodium phosphate")
    assert (dex.dose, dex.unit, dex.volume_ml) == (10, "mg", 1)
    assert r.record.laterality == "left"
    assert "eight out of ten" in [e.text for e in r.record.evidence["pain_scores.pre"]]


def test_spoken_decimals_rates_and_levels_across_regions(check):
    r = check(note("Thoracic epidural catheter at T seven T eight under fluoroscopy, catheter left in place. "
                   "Infusion zero point one percent bupivacaine at six CC per hour."))
    assert r.record.levels == ["T7-T8"]
    bupi = next(m for m in r.record.medications if m.name == "bupivacaine")
    assert (bupi.concentration, bupi.rate_ml_hr) == ("0.1%", 6)


def test_spoken_number_words_that_are_not_quantities_stay(check):
    from notecheck.patterns_path import patterns_dir
    from notecheck.spoken_numbers import load_spoken_numbers

    spoken = load_spoken_numbers(patterns_dir())
    text = "No one else; seventy eight year old; zero point two five percent"
    shadow = spoken.digits_for_words(text)
    assert len(shadow) == len(text)
    assert shadow.startswith("No one else; 78") and "0.25" in shadow
    assert spoken.digits_for_words("L4-5, 80 mg") == "L4-5, 80 mg"


def test_levels_without_a_dash(check):
    r = check(note("L4 L5 interlaminar ESI under fluoroscopy. Kenalog 80 mg injected."))
    assert r.record.levels == ["L4-L5"]
    r = check(note("L5-S1 interlaminar ESI under fluoroscopy, needle at L5 5 cm depth. Kenalog 80 mg injected."))
    assert r.record.levels == ["L5-S1"]


def test_dictated_headers_without_colons_end_a_negation(check):
    r = check("history of no relief from pills PROCEDURE under fluoroscopy L4-L5 interlaminar epidural with "
              "Omnipaque two CC and Kenalog eighty milligrams two CC consent obtained no complications")
    assert r.record.imaging == "fluoroscopy"
    assert r.record.contrast.used is True


def test_unticked_template_boxes_are_not_choices(check):
    r = check(note("L4-L5 interlaminar ESI.\nGuidance:  [ ] Fluoroscopy   [X] Ultrasound   [ ] CT   [ ] Landmark\n"
                   "Contrast:  [ ] Omnipaque   [X] None - iodinated contrast allergy\nKenalog 80 mg injected."))
    assert r.record.imaging == "ultrasound" and r.code.cpt == "62322"
    assert r.record.contrast.used is False


def test_blank_label_on_a_run_together_line_owns_only_its_blank(check):
    r = check("Procedure: cervical ILESI C6-C7. Consent: ___ . Pt prone, C-arm, 18g Crawford needle at C6-C7 under "
              "AP then CLO views, Omni 240 0.8 mL, Celestone 6 mg injected. No complications. Pain 6/10 pre, 3/10 "
              "post. Tolerated well, d/c home.")
    assert r.record.imaging == "fluoroscopy"
    assert finding(r, "complications").status == "met"
    assert finding(r, "consent").status == "missing"


def test_dictated_period_ends_a_sentence_but_a_period_of_time_does_not(check):
    r = check("LESI at L five S one under fluoroscopy period prior ILESI gave sixty percent relief period "
              "pain today seven out of ten period Omni two forty two CC showed epidural spread period "
              "DMP eighty milligrams injected period no complications period pain after two out of ten period "
              "failed PT for a period of eight weeks")
    assert r.record.levels == ["L5-S1"] and r.code.cpt == "62323"
    assert r.record.contrast.used is True
    assert r.record.pain_scores.pre == 7
    assert r.record.conservative_therapy.weeks == 8


# --- round 7 (dev_u..x): British spelling, inpatient dispositions, coordinated omissions ------------------

def test_british_anaesthetic_record_is_the_anesthesia_family(check):
    r = check("ANAESTHETIC RECORD - THEATRE 3\nOperation: open inguinal hernia repair.\nAnaesthetic: lumbar "
              "epidural anaesthesia as the sole anaesthetic technique.\n18g Tuohy L2/3 midline, LOR saline. "
              "Catheter 4 cm in space. 0.5% bupivacaine 18 mL in divided doses.")
    assert r.code.cpt is None and r.code.out_of_family == "anesthesia"


def test_physio_for_weeks_is_conservative_care(check):
    r = check(note("Failed 6 weeks of physiotherapy and regular paracetamol. L5/S1 interlaminar ESI under "
                   "fluoroscopy. Depo-Medrone 80 mg injected."))
    assert r.record.conservative_therapy.weeks == 6


def test_saying_it_is_not_another_family(check):
    r = check(note("Caudal epidural catheter under fluoroscopy, left in place for infusion. No hyaluronidase or "
                   "hypertonic saline given; this is not an adhesiolysis procedure. Bupivacaine 0.1% at 6 mL/hr."))
    assert r.code.out_of_family is None and r.code.cpt == "62327"


def test_modality_coordinated_with_a_contrast_omission(check):
    r = check(note("Ultrasound-guided L4-L5 interlaminar ESI.\nALLERGY: iodinated contrast (hives) - fluoro/contrast "
                   "not used; ultrasound guidance.\nTriamcinolone 40 mg injected."))
    assert r.record.imaging == "ultrasound" and r.code.cpt == "62322"


def test_after_a_fall_or_a_discussion_is_not_after_the_injection(check):
    r = check(no_scores("Hip fracture after a ground-level fall. Pain 8/10 with any movement.\nL3-L4 epidural "
                        "catheter under fluoroscopy, catheter left in place, ropivacaine 0.2% at 8 mL/hr.\n"
                        "Consent obtained after discussion of risks. 30 min later pain 3/10."))
    assert (r.record.pain_scores.pre, r.record.pain_scores.post) == (8, 3)


def test_inpatient_transfer_is_a_post_procedure_status(check):
    r = check("Consent obtained. T6/7 thoracic epidural catheter, landmark technique, LOR, catheter left in, "
              "bupivacaine 0.1% at 6 mL/hr. No complications. 30 min: NRS 2/10, BP 132/78, sensory block T4-T9. "
              "Obs stable, back to bed space on HDU.")
    assert finding(r, "post_procedure_assessment").status == "met"

"""Staff pages speak the staff's language: French by default (LANGUAGE_CODE "fr", like Django's
own admin chrome), English when the browser asks for it or the language cookie says so. The
strings come from locale/fr (staff strings are written in English in the source)."""

from __future__ import annotations

import gettext
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone

from tests.factories import make_lot, make_product, make_staff
from tests.support.po import PoEntry, read_po
from traceability.recalls import recall_declare

LOCALE = Path(settings.BASE_DIR) / "locale"

RECALL_PERMS = (
    "traceability.add_recall",
    "traceability.view_recall",
    "traceability.add_recallclosure",
)

# How the page is asked for: nothing (the default language), the browser's Accept-Language,
# or the language cookie (the language switcher's), with the language expected.
ASKED = [
    pytest.param({}, {}, "fr", id="default"),
    pytest.param({"HTTP_ACCEPT_LANGUAGE": "fr-FR,fr;q=0.9"}, {}, "fr", id="accept-fr"),
    pytest.param({"HTTP_ACCEPT_LANGUAGE": "en-GB,en;q=0.9"}, {}, "en", id="accept-en"),
    pytest.param(
        {"HTTP_ACCEPT_LANGUAGE": "fr-FR"}, {"django_language": "en"}, "en", id="cookie-en"
    ),
]


def client_for(user, headers: dict, cookies: dict) -> tuple[Client, dict]:
    client = Client()
    client.force_login(user)
    for name, value in cookies.items():
        client.cookies[name] = value
    return client, headers


def declared_recall(**kw):
    lot = make_lot()
    for _ in range(3):
        make_product(lot)
    args = {
        "kind": "recall",
        "reference": "RC-LANG-1",
        "reason": "Listeria monocytogenes",
        "instructions_fr": "Ne consommez pas ce produit.",
        "instructions_en": "Do not eat this product.",
        "starts_at": timezone.now() - timedelta(minutes=1),
        "scope": "lots",
        "lot_ids": [lot.pk],
        **kw,
    }
    return recall_declare(**args), lot


def expect(page: str, language: str, french: list[str], english: list[str]) -> None:
    shown, hidden = (french, english) if language == "fr" else (english, french)
    for text in shown:
        assert text in page, f"{text!r} missing from the {language} page"
    for text in hidden:
        assert text not in page, f"{text!r} on the {language} page"


# --- The admin home's panel -----------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(("headers", "cookies", "language"), ASKED)
def test_the_admin_home_panel_is_in_the_staff_language(headers, cookies, language):
    declared_recall()
    user = make_staff("chef")
    user.is_superuser = True
    user.save()
    client, headers = client_for(user, headers, cookies)

    response = client.get("/admin/", **headers)

    assert response.status_code == 200
    assert response["Content-Language"] == language
    expect(
        response.content.decode(),
        language,
        french=[
            "À traiter maintenant",
            "Rappels et retraits en cours",
            "Alertes qualité ouvertes : critique",
            "Stations qui envoient sans lot",
            "Alertes d’étiquettes copiées, 7 derniers jours",
            "Dernière vérification du registre",
            "jamais lancée (manage.py verify_ledger)",
            "Courbes optimisées en attente d’approbation",
        ],
        english=[
            "What needs you now",
            "Active recalls and withdrawals",
            "Open quality alerts: critical",
            "Stations sending without a lot",
            "Copied-label alerts, last 7 days",
            "Last ledger verification",
            "never run (manage.py verify_ledger)",
            "Optimised curves awaiting approval",
        ],
    )


# --- Recall admin ---------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(("headers", "cookies", "language"), ASKED)
def test_the_recall_reach_and_list_are_in_the_staff_language(headers, cookies, language):
    recall, lot = declared_recall()
    client, headers = client_for(make_staff("qualite", *RECALL_PERMS), headers, cookies)

    reach = client.get(f"/admin/traceability/recall/{recall.pk}/reach/", **headers)
    listing = client.get("/admin/traceability/recall/", **headers)
    detail = client.get(f"/admin/traceability/recall/{recall.pk}/change/", **headers)

    assert reach.status_code == listing.status_code == detail.status_code == 200
    expect(
        reach.content.decode(),
        language,
        french=[
            "Portée du rappel RC-LANG-1",
            'data-testid="reach-units">3</strong> unités concernées',
            "Unités concernées par lot",
            "Scans depuis la déclaration, par jour et par lieu",
            "Aucun scan pour l’instant.",
            "CSV des unités concernées",
        ],
        english=[
            "Reach of recall RC-LANG-1",
            'data-testid="reach-units">3</strong> affected units',
            "Affected units by lot",
            "Scans since the declaration, per day and place",
            "No scan yet.",
            "CSV of affected units",
        ],
    )
    expect(
        listing.content.decode(),
        language,
        french=["En cours (non clos)", "en cours", ">portée</a>", ">clore</a>"],
        english=["Active (not closed)", ">reach</a>", ">close</a>"],
    )
    expect(
        detail.content.decode(),
        language,
        french=["Consignes (français)", "Déclaré par", "Rappel (les consommateurs", ">Rappels</a>"],
        english=["Instructions fr", "Declared by", "Recall (consumers return", ">Recalls</a>"],
    )


@pytest.mark.django_db
@pytest.mark.parametrize(("headers", "cookies", "language"), ASKED)
def test_declaring_a_recall_is_in_the_staff_language(headers, cookies, language):
    lot = make_lot()
    for _ in range(2):
        make_product(lot)
    client, headers = client_for(make_staff("qualite", *RECALL_PERMS), headers, cookies)
    data = {
        "kind": "withdrawal",
        "reference": "RC-LANG-2",
        "reason": "Étiquetage",
        "instructions_fr": "Rapportez-le.",
        "instructions_en": "Bring it back.",
        "starts_at": timezone.localtime().strftime("%Y-%m-%d %H:%M"),
        "scope": "lots",
        "lots": [lot.pk],
    }

    form = client.get("/admin/traceability/recall/add/", **headers).content.decode()
    preview = client.post("/admin/traceability/recall/add/", data, **headers).content.decode()
    refused = client.post(
        "/admin/traceability/recall/add/", {**data, "reference": ""}, **headers
    ).content.decode()

    expect(
        form,
        language,
        french=[
            "Déclarer un rappel ou un retrait",
            "Consignes aux consommateurs (français)",
            "Retrait de la vente",
            "Périmètre : premier jour de production.",
            'value="Voir les unités concernées"',
        ],
        english=[
            "Declare a recall or withdrawal",
            "Instructions for consumers (French)",
            "Withdrawal from sale",
            "Scope: first production day.",
            'value="Preview affected units"',
        ],
    )
    expect(
        preview,
        language,
        french=["2</strong> unités concernées, dans 1 lot.", 'value="Confirmer et déclarer"'],
        english=["2</strong> units affected, from 1 lot.", 'value="Confirm and declare"'],
    )
    # A refused form: Django's own message, in the same language.
    expect(
        refused,
        language,
        french=["Ce champ est obligatoire.", 'value="Voir les unités concernées"'],
        english=["This field is required.", 'value="Preview affected units"'],
    )


# --- The live SQAL dashboard ----------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(("headers", "cookies", "language"), ASKED)
def test_the_live_dashboard_is_in_the_staff_language(headers, cookies, language):
    make_product(make_lot(), sample_id="LANG-1")
    user = make_staff("qualite", "sensors.view_sensorsample")
    client, headers = client_for(user, headers, cookies)

    response = client.get("/sqal/live/", **headers)

    assert response.status_code == 200
    page = response.content.decode()
    assert f'<html lang="{language}">' in page
    expect(
        page,
        language,
        french=[
            "Contrôle qualité SQAL en direct",
            "À traiter maintenant",
            "Rien à traiter : aucune alerte ouverte.",
            'data-msg-retry="déconnecté, nouvelle tentative…"',
            "Dernières alertes",
            "Canaux spectraux AS7341",
        ],
        english=[
            "SQAL live quality control",
            "What needs you now",
            "Nothing needs you: no open alert.",
            'data-msg-retry="disconnected, retrying…"',
            "Latest alerts",
            "AS7341 spectral channels",
        ],
    )


# --- The catalogues -------------------------------------------------------------------------


def catalogue(language: str) -> dict[tuple[str | None, str], PoEntry]:
    return {e.key: e for e in read_po(LOCALE / language / "LC_MESSAGES" / "django.po")}


def test_every_english_staff_string_has_a_french_translation_and_french_ones_keep_theirs():
    """Consumer strings are French in the source, so the English catalogue translates them;
    staff strings are English in the source, so the French one does. Each msgid is one or the
    other: translated in exactly one catalogue."""
    french, english = catalogue("fr"), catalogue("en")

    assert french.keys() == english.keys(), "catalogues made from different sources"
    fuzzy = [key for key, e in {**french, **english}.items() if "fuzzy" in e.flags]
    assert fuzzy == []
    untranslated, doubly, partial = [], [], []
    for key, fr in french.items():
        en = english[key]
        if not (fr.translated or fr.untranslated) or not (en.translated or en.untranslated):
            partial.append(key)
        elif en.translated and fr.translated:
            doubly.append(key)
        elif not en.translated and not fr.translated:
            untranslated.append(key)
    assert untranslated == [], "English staff strings without a French translation"
    assert doubly == [], "translated both ways: say which language the source string is in"
    assert partial == [], "a plural form left empty"
    assert sum(e.translated for e in french.values()) > 300


@pytest.mark.parametrize("language", ["fr", "en"])
def test_the_compiled_catalogue_is_the_one_of_the_po_file(language):
    """The .mo the server reads holds the .po's translations (compilemessages was run)."""
    with (LOCALE / language / "LC_MESSAGES" / "django.mo").open("rb") as mo:
        compiled = gettext.GNUTranslations(mo)
    translated = [e for e in catalogue(language).values() if e.translated]

    for e in translated:
        if e.msgid_plural is None:
            got = compiled.pgettext(e.msgctxt, e.msgid) if e.msgctxt else compiled.gettext(e.msgid)
            assert got == e.msgstr[0], e.msgid
        else:
            for n, index in ((1, 0), (2, 1)):
                got = (
                    compiled.npgettext(e.msgctxt, e.msgid, e.msgid_plural, n)
                    if e.msgctxt
                    else compiled.ngettext(e.msgid, e.msgid_plural, n)
                )
                assert got == e.msgstr[index], e.msgid
    # Nothing more either: one entry per form plus the header.
    forms = sum(len(e.msgstr) for e in translated)
    assert len(compiled._catalog) == forms + 1


# --- Field and model names (verbose names) in the admin -------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(("headers", "cookies", "language"), ASKED)
def test_the_admin_index_names_the_models_in_the_staff_language(headers, cookies, language):
    user = make_staff("chef")
    user.is_superuser = True
    user.save()
    client, headers = client_for(user, headers, cookies)

    response = client.get("/admin/", **headers)

    assert response.status_code == 200
    expect(
        response.content.decode(),
        language,
        french=[
            ">Échantillons SQAL<",
            ">Produits consommateurs<",
            ">Têtes signées du registre<",
            ">Courbes d’alimentation<",
            ">Alertes de scan<",
        ],
        english=[
            ">Sensor samples<",
            ">Consumer products<",
            ">Ledger heads<",
            ">Feeding curves<",
            ">Scan alerts<",
        ],
    )


@pytest.mark.django_db
@pytest.mark.parametrize(("headers", "cookies", "language"), ASKED)
def test_the_lot_list_headers_are_in_the_staff_language(headers, cookies, language):
    make_lot(code="LOT-LANG-1")
    client, headers = client_for(make_staff("qualite", "gaveurs.view_lot"), headers, cookies)

    response = client.get("/admin/gaveurs/lot/", **headers)

    assert response.status_code == 200
    page = response.content.decode()
    assert "LOT-LANG-1" in page
    expect(
        page,
        language,
        french=[
            ">Début du gavage<",
            ">Fin de gavage prévue<",
            ">Nombre de canards<",
            ">Poids final moyen (g)<",
            ">Courbe d’alimentation<",
        ],
        english=[
            ">Feeding start<",
            ">Planned feeding end<",
            ">Duck count<",
            ">Mean final weight g<",
            ">Feeding curve<",
        ],
    )


@pytest.mark.django_db
@pytest.mark.parametrize(("headers", "cookies", "language"), ASKED)
def test_a_sensor_sample_list_and_form_are_in_the_staff_language(headers, cookies, language):
    product = make_product(make_lot(), sample_id="LANG-S1")
    client, headers = client_for(
        make_staff("qualite", "sensors.view_sensorsample"), headers, cookies
    )

    listing = client.get("/admin/sensors/sensorsample/", **headers)
    detail = client.get(f"/admin/sensors/sensorsample/{product.sample_id}/change/", **headers)

    assert listing.status_code == detail.status_code == 200
    expect(
        listing.content.decode(),
        language,
        french=[">Identifiant de l’échantillon<", ">Mesuré le<", ">Code du site<"],
        english=[">Sample id<", ">Time<", ">Site code<"],
    )
    expect(
        detail.content.decode(),
        language,
        french=[
            ">Score de fusion",
            ">Volume ToF (mm³)",
            ">Indice de fraîcheur spectral",
            ">Lot d’abattage",
            ">Humidité (%)",
            "Affichage de échantillon SQAL",
        ],
        english=[
            ">Fusion score",
            ">Tof volume mm3",
            ">Spectral freshness index",
            ">Lot abattage",
            ">Humidity percent",
            "View sensor sample",
        ],
    )


@pytest.mark.django_db
@pytest.mark.parametrize(("headers", "cookies", "language"), ASKED)
def test_the_consumer_product_list_and_form_are_in_the_staff_language(headers, cookies, language):
    product = make_product(make_lot())
    client, headers = client_for(
        make_staff("qualite", "traceability.view_consumerproduct"), headers, cookies
    )

    listing = client.get("/admin/traceability/consumerproduct/", **headers)
    detail = client.get(f"/admin/traceability/consumerproduct/{product.pk}/change/", **headers)

    assert listing.status_code == detail.status_code == 200
    expect(
        listing.content.decode(),
        language,
        french=[
            ">Produits consommateurs<",
            ">Code du lot<",
            ">Identifiant de l’échantillon SQAL<",
            ">Conforme<",
        ],
        english=[">Consumer products<", ">Lot code<", ">Sqal sample id<", ">Is compliant<"],
    )
    expect(
        detail.content.decode(),
        language,
        french=[">Numéro de série GS1", ">Empreinte dans le registre", ">ITM du lot"],
        english=[">Gs1 serial", ">Blockchain hash", ">Lot itm"],
    )

"""The Jinja2 template of the HTML report (inline CSS, no external resource)."""

from __future__ import annotations

__all__ = ["HTML_TEMPLATE"]

HTML_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}</title>
<style>
  body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0;
         color: #111827; background: #f9fafb; }
  header { background: #111827; color: #f9fafb; padding: 18px 32px; }
  header h1 { margin: 0 0 4px 0; font-size: 22px; }
  header p { margin: 0; color: #d1d5db; font-size: 13px; }
  main { padding: 8px 32px 40px 32px; max-width: 1280px; }
  h2 { margin-top: 32px; border-bottom: 2px solid #e5e7eb; padding-bottom: 4px; }
  table { border-collapse: collapse; font-size: 13px; background: white; margin: 8px 0; }
  th, td { border: 1px solid #e5e7eb; padding: 4px 8px; text-align: right; }
  th { background: #f3f4f6; }
  td:first-child, th:first-child, td.text { text-align: left; }
  tr.agent td { background: #fff7ed; }
  .facts { display: flex; flex-wrap: wrap; gap: 8px; margin-top: 12px; }
  .fact { background: white; border: 1px solid #e5e7eb; border-radius: 6px;
          padding: 6px 10px; font-size: 13px; }
  .fact b { display: block; font-size: 11px; color: #6b7280; font-weight: 500; }
  figure { background: white; border: 1px solid #e5e7eb; border-radius: 6px;
           padding: 12px; margin: 16px 0; }
  figure img { max-width: 100%; }
  figcaption { font-size: 13px; color: #374151; margin-top: 6px; }
  .note { font-size: 13px; color: #374151; max-width: 900px; }
</style>
</head>
<body>
<header>
  <h1>{{ title }}</h1>
  <p>How faithful are the simulated users? Generated {{ generated }} by personasim.</p>
</header>
<main>
<div class="facts">
{% for key, value in facts.items() %}
  <div class="fact"><b>{{ key }}</b>{{ value }}</div>
{% endfor %}
</div>

{% if verdict %}
<h2 id="verdict">Verdict</h2>
<ul class="verdict">
{% for line in verdict %}<li>{{ line }}</li>{% endfor %}
</ul>
{% endif %}

{% if not_measured %}
<h2 id="not-measured">Not measured</h2>
<ul>
{% for why in not_measured.values() %}<li>{{ why }}</li>{% endfor %}
</ul>
{% endif %}

{% if rating_rows %}
<h2 id="ratings">Rating fidelity</h2>
<p class="note">On the test pairs every model scored. RMSE 95%: interval from resampling
users; "vs best baseline": RMSE difference from the best classical baseline with its
paired interval (negative is better); "vs prior alone": the agent minus its
collaborative prior alone (model "prior"), which is what the language model adds.
URR scored: share of answers whose most likely token is not a rating; URR free text:
share of free-text answers with no rating on the scale. W1 and KL compare the
predicted and true rating histograms.</p>
<table id="rating-table">
<tr>{% for h in rating_rows[0].keys() %}<th>{{ h }}</th>{% endfor %}</tr>
{% for row in rating_rows %}
<tr class="{{ row.kind }}">{% for v in row.values() %}<td>{{ v }}</td>{% endfor %}</tr>
{% endfor %}
</table>
{% endif %}

{% if new_item_rows %}
<h2 id="new-items">New items</h2>
<p class="note">The test pairs of the {{ new_items["items"] }} items that no training
rating holds (withheld by <code>split.new_items</code>, or rated only in the test part):
collaborative models know nothing of them and fall back to the user's mean; the agents
read their title, year and genres.</p>
<table id="new-items-table">
<tr>{% for h in new_item_rows[0].keys() %}<th>{{ h }}</th>{% endfor %}</tr>
{% for row in new_item_rows %}
<tr class="{{ row.kind }}">{% for v in row.values() %}<td>{{ v }}</td>{% endfor %}</tr>
{% endfor %}
</table>
{% endif %}

{% if taste_auc %}
<h2 id="taste">Taste alignment</h2>
<p class="note">Candidate lists of held-out positives and never-rated negatives at each
ratio (Agent4Rec's protocol), one column per list kind; ★ marks the best model of each.
AUC ranks a user's items above the negatives without a threshold; for F1 each model says
yes above its threshold, calibrated on train lists (maximum F1). 95% intervals from
resampling users. On uniform negatives popularity alone scores high;
popularity-matched negatives are as popular as the positives. "watch-prior" is the
agents' collaborative prior alone.</p>
<table id="taste-table">
<tr>{% for h in taste_auc[0].keys() %}<th>{{ h }}</th>{% endfor %}</tr>
{% for row in taste_auc %}
<tr>{% for v in row.values() %}<td>{{ v }}</td>{% endfor %}</tr>
{% endfor %}
</table>
<h3>F1</h3>
<table id="taste-f1-table">
<tr>{% for h in taste_f1[0].keys() %}<th>{{ h }}</th>{% endfor %}</tr>
{% for row in taste_f1 %}
<tr>{% for v in row.values() %}<td>{{ v }}</td>{% endfor %}</tr>
{% endfor %}
</table>
{% endif %}

{% if simulation_rows %}
<h2 id="simulation">Recommenders: simulated sessions and the held-out log</h2>
<p class="note">{{ simulation.settings.users }} users, played by the
{{ simulation.settings.agent }} agents ({{ simulation.settings.decisions }} decisions),
browse pages of recommendations: they watch, rate what they watched (a like is a rating
of 4 or more), and continue or leave after each page by their activity and how much they
liked the page. Coverage: distinct items shown over the catalogue; novelty: mean
self-information of the items shown. Log hits: share of the items the agents watched
(skipped) that the real user rated in the held-out period. nDCG and Recall: the
recommender's top {{ simulation.settings.offline_k }} against the held-out log.
{{ decisions_text }}</p>
<table id="simulation-table">
<tr>{% for h in simulation_rows[0].keys() %}<th>{{ h }}</th>{% endfor %}</tr>
{% for row in simulation_rows %}
<tr>{% for v in row.values() %}<td>{{ v }}</td>{% endfor %}</tr>
{% endfor %}
</table>
<p class="note"><b>Does the simulation rank the recommenders as the log does?</b>
{{ simulation.agreement.headline.simulated | replace("_", " ") | capitalize }} vs nDCG:
Kendall tau {{ "%.3f" | format(simulation.agreement.headline.kendall_tau) }},
Spearman {{ "%.3f" | format(simulation.agreement.headline.spearman) }}
({{ simulation.agreement.headline.n }} recommenders); {{ user_agreement }}.</p>
<table id="agreement-table">
<tr>{% for h in agreement_rows[0].keys() %}<th>{{ h }}</th>{% endfor %}</tr>
{% for row in agreement_rows %}
<tr>{% for v in row.values() %}<td>{{ v }}</td>{% endfor %}</tr>
{% endfor %}
</table>
{% if simulation_persona_rows %}
<p class="note">Per persona: liked items per session / watch rate.</p>
<table id="simulation-persona-table">
<tr>{% for h in simulation_persona_rows[0].keys() %}<th>{{ h }}</th>{% endfor %}</tr>
{% for row in simulation_persona_rows %}
<tr>{% for v in row.values() %}<td>{{ v }}</td>{% endfor %}</tr>
{% endfor %}
</table>
{% endif %}
{% if feedback_rows %}
<h3>Feedback loop</h3>
<p class="note">Each round adds the items the agents watched to every recommender's
training data and retrains it. Coverage, Gini of exposure, genre entropy and popularity
are measured on the top-{{ simulation.settings.offline_k }} lists of the same users; the
history drift is the Jensen-Shannon divergence (bits) between the genres of a user's
training history and of their history with what they took.</p>
<ul>{% for sentence in feedback_sentences %}<li>{{ sentence }}</li>{% endfor %}</ul>
<table id="feedback-table">
<tr>{% for h in feedback_rows[0].keys() %}<th>{{ h }}</th>{% endfor %}</tr>
{% for row in feedback_rows %}
<tr>{% for v in row.values() %}<td>{{ v }}</td>{% endfor %}</tr>
{% endfor %}
</table>
{% endif %}
{% endif %}

<h2 id="figures">Figures</h2>
{% for caption, text, uri in figures %}
<figure><img alt="{{ caption }}" src="{{ uri }}"><figcaption><b>{{ caption }}.</b>
{{ text }}</figcaption></figure>
{% endfor %}

{% if group_rows %}
<h2 id="groups">RMSE per persona and trait level</h2>
<table id="group-table">
<tr><th>grouping</th><th>group</th><th>users</th>
{% for m in group_models %}<th>{{ m }}</th>{% endfor %}</tr>
{% for row in group_rows %}
<tr>{% for v in row.values() %}<td>{{ v }}</td>{% endfor %}</tr>
{% endfor %}
</table>
{% endif %}

{% if persona_map or personas %}
<h2 id="personas">Personas</h2>
{% if persona_map %}
<figure><img alt="persona map" src="{{ persona_map }}"><figcaption><b>Persona map.</b>
Users' clustered features (the weighted blocks) on their first two principal
components; crosses are the centroids.</figcaption></figure>
{% endif %}
{% if personas %}
<table id="persona-table">
<tr><th>persona</th><th>users</th><th>top genres</th><th>set apart by</th><th>mean rating</th>
<th>description</th></tr>
{% for p in personas %}
<tr><td>{{ p.persona }}</td><td>{{ p.size }}</td>
<td class="text">{{ (p.top_genres or [])[:3] | map(attribute="genre") | join(", ") }}</td>
<td class="text">{{ (p.distinguishing or []) | map(attribute="text") | join("; ") }}</td>
<td>{{ "-" if p.mean_rating is none else "%.2f" | format(p.mean_rating) }}</td>
<td class="text">{{ p.description }}</td></tr>
{% endfor %}
</table>
{% endif %}
{% endif %}

{% if free_answers %}
<h2 id="free">Free-text answers (samples)</h2>
<table id="free-table">
<tr><th>model</th><th>true rating</th><th>answer</th><th>parsed</th></tr>
{% for a in free_answers %}
<tr><td>{{ a.model }}</td><td>{{ a.truth }}</td><td class="text">{{ a.answer }}</td>
<td>{{ a.parsed }}</td></tr>
{% endfor %}
</table>
{% endif %}

{% if stages %}
<h2 id="stages">Stages</h2>
<table id="stage-table">
<tr><th>stage</th><th>wall time (s)</th><th>peak RSS (MiB)</th><th>started</th></tr>
{% for s in stages %}
<tr><td>{{ s.stage }}</td><td>{{ "%.1f" | format(s.wall_time_s or 0) }}</td>
<td>{{ "%.0f" | format(s.peak_rss_mib) if s.peak_rss_mib is not none else "–" }}</td>
<td class="text">{{ s.at }}</td></tr>
{% endfor %}
</table>
{% endif %}
</main>
</body>
</html>
"""

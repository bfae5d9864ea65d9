#!/usr/bin/env bash
# Regenerates bench/bodies/ from the vendor fixtures in tests/fixtures/ (needs jq). The bodies
# are checked in, so neither benchmark needs jq; rerun this only when a fixture changes.
#
# Every list holds 30 items built on the fixture's fullest item (what a real server sends for
# every item), with distinct ids, names and dates, and statuses, channels and priorities taken
# in turn from the fixture's other items. Bodies are compact, as servers send them.
set -euo pipefail
cd "$(dirname "$0")/.."
F=tests/fixtures
OUT=bench/bodies
mkdir -p "$OUT"/{libredesk,chatcaptain,llamadapro,caac}

# Shared helpers: a zero-padded number, and names/dates that differ per item.
HELPERS='
def pad($n; $w): ("000000000000" + ($n | tostring))[-$w:];
def first_names: ["Ana","Bo","Cy","Di","Emil","Farah","Goran","Hana","Ivo","Jun"];
def last_names: ["Lima","Ng","Oh","Park","Quist","Rossi","Sato","Tanaka","Ueda","Vance"];
def day($i): "2025-09-" + pad(1 + ($i % 28); 2);
'

# Libredesk: one conversation (GET /api/v1/conversations/{uuid}) and a page of 30 of the
# `conversations/all` list items; a page of 30 contacts.
jq -c . "$F/libredesk/conversation.json" >"$OUT/libredesk/conversation.json"
jq -c "$HELPERS"'
  .data.results as $items | $items[0] as $t |
  .data = {
    results: [range(0; 30) as $i | $items[$i % ($items | length)] as $v | $t + {
      id: (1000 + $i),
      uuid: ("0b8e5a3c-" + pad($i; 4) + "-4c1e-9a55-2f0c6f3b" + pad($i; 4)),
      created_at: (day($i) + "T09:00:00Z"),
      updated_at: (day($i) + "T09:30:00Z"),
      last_message_at: (day($i) + "T09:30:00Z"),
      subject: ("Order " + pad(4000 + $i; 5) + ": where is my parcel?"),
      status: $v.status, priority: $v.priority,
      inbox_channel: $v.inbox_channel, inbox_name: ($v.inbox_name // $t.inbox_name),
      contact: ($t.contact + {first_name: first_names[$i % 10], last_name: last_names[($i / 10 | floor) % 10]})
    }],
    total: 90, per_page: 30, total_pages: 3, page: 1
  }' "$F/libredesk/conversations_list.json" >"$OUT/libredesk/conversations_page.json"
jq -c "$HELPERS"'
  .data.results[0] as $t |
  .data = {
    results: [range(0; 30) as $i | $t + {
      id: (2000 + $i),
      first_name: first_names[$i % 10], last_name: last_names[($i / 10 | floor) % 10],
      email: ((first_names[$i % 10] | ascii_downcase) + "." + pad($i; 2) + "@example.com"),
      phone_number: (if $i % 3 == 0 then "98765" + pad($i; 5) else null end),
      phone_number_calling_code: (if $i % 3 == 0 then "+44" else null end),
      created_at: (day($i) + "T18:53:01.172243Z"), updated_at: (day($i) + "T19:00:00Z")
    }],
    total: 90, per_page: 30, total_pages: 3, page: 1
  }' "$F/libredesk/contacts_list.json" >"$OUT/libredesk/contacts_page.json"

# ChatCaptain: the whole conversations list (no paging at the vendor) and a contacts page.
jq -c -n "$HELPERS"'
  input.conversation as $t | input.conversations as $items |
  { conversations: [range(0; 30) as $i | $items[$i % ($items | length)] as $v | $t + {
      id: ("cnv_" + pad(30 - $i; 4)),
      contactId: ("ctc_" + pad($i; 4)),
      channelId: ($v.channelId // $t.channelId), channelType: ($v.channelType // $t.channelType),
      archived: ($i % 4 == 1),
      name: (first_names[$i % 10] + " " + last_names[($i / 10 | floor) % 10]),
      created: (day($i) + "T08:15:00.000Z"), updated: (day($i) + "T09:02:41.512Z")
    }] }' "$F/chatcaptain/conversation.json" "$F/chatcaptain/conversations_list.json" \
  >"$OUT/chatcaptain/conversations.json"
jq -c "$HELPERS"'
  .contact as $t |
  { contacts: [range(0; 30) as $i | $t + {
      id: ("ctc_" + pad(30 - $i; 4)),
      name: (first_names[$i % 10] + " " + last_names[($i / 10 | floor) % 10]),
      email: ((first_names[$i % 10] | ascii_downcase) + "." + pad($i; 2) + "@example.de"),
      phoneNumber: ("+49 176 1234-" + pad($i; 4)), whatsappId: ("4917612345" + pad($i; 3)),
      webId: ("web_" + pad($i; 6)),
      created: (day($i) + "T09:00:00.000Z"), updated: (day($i) + "T12:30:00.000Z")
    }] }' "$F/chatcaptain/contact.json" >"$OUT/chatcaptain/contacts_page.json"

# LlamadaPro: a contacts page (`{items, nextPageToken, totalCount}`).
jq -c "$HELPERS"'
  . as $t |
  { items: [range(0; 30) as $i | (1001 + $i) as $id | $t + {
      id: $id,
      firstName: first_names[$i % 10], lastName: last_names[($i / 10 | floor) % 10],
      email: ((first_names[$i % 10] | ascii_downcase) + "." + pad($i; 2) + "@example.cl"),
      createdAt: (day($i) + "T12:00:00.000Z"), updatedAt: (day($i) + "T09:30:00.000Z"),
      addresses: [$t.addresses[] | . + {
        id: (. .id + 10 * $i), contactId: $id,
        address: (if .channelType == "EMAIL"
                  then ((first_names[$i % 10] | ascii_downcase) + "." + pad($i; 2) + "@example.cl")
                  else .address[:-2] + pad($i; 2) end)
      }]
    }],
    nextPageToken: "Y29udGFjdHM6MzA", totalCount: 90 }' "$F/llamadapro/contact.json" \
  >"$OUT/llamadapro/contacts_page.json"

# CAAC has no list call: its contacts.list is a lookup answering one member. 30 lookup
# answers, kept as one array here; the benchmark translates them one by one.
jq -c "$HELPERS"'
  . as $t |
  [range(0; 30) as $i | $t + {
    id: (67000 + $i),
    external_member_id: ("U1234567890abcdef1234567890ab" + pad($i; 4)),
    original_name: (first_names[$i % 10] + " " + last_names[($i / 10 | floor) % 10]),
    original_email: ((first_names[$i % 10] | ascii_downcase) + "." + pad($i; 2) + "@example.co.th"),
    display_mobile: ("081-234-56" + pad($i; 2))
  }]' "$F/caac/member_by_external_id.json" >"$OUT/caac/members.json"

wc -c "$OUT"/*/*.json

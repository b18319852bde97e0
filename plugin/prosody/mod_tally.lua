-- mod_tally.lua — tally inside Prosody 0.12: live-event commerce in MUC rooms
-- and by direct message to the shop's JID. A thin mapping of XMPP to
-- libtally's frames (through the Lua binding `tally`, plugin/prosody/tally_lua.c);
-- every rule lives in the engine.
--
-- Load it on the MUC component (rooms) and on the VirtualHost (the shop's JID):
--
--   tally_config = { dsn = "host=/run/postgresql dbname=tally", network = "xmpp" }
--       -- engine keys as text (tally config lists them); mode = "remote",
--       -- address = "unix:/run/tally/tally.sock", secret = "..." for tallyd
--   tally_shop = "shop@example.org"        -- the JID users message; answers come from it
--   VirtualHost "example.org"  modules_enabled = { "tally" }
--   Component "rooms.example.org" "muc"  modules_enabled = { "tally" }
--
-- One engine per Prosody process, shared by both (module:shared). The
-- chat server's thread never waits: submit copies into a queue, and the
-- engine's fd is watched on Prosody's loop (net.server.watchfd).
--
-- Answers to a room line go privately to the sender as a 1:1 chat message
-- from the shop's JID, not as a MUC private message: offline storage and
-- carbons keep it (on every device, and after the user left the room), and
-- it is the same conversation as direct commands to the shop.

local st = require "util.stanza";
local jid_util = require "util.jid";
local server = require "net.server";
local usermanager = require "core.usermanager";
local tally = require "tally";

-- "/*/...": one table for every host of this process (a relative path is per host).
local shared = module:shared("/*/tally/engine");
local prefixes = module:get_option_array("tally_prefixes", { "!", "/" });
local shop_jid = module:get_option_string("tally_shop", "shop@" .. module.host);
local nick = module:get_option_string("tally_nick", "tally");
local network = (module:get_option("tally_config", {}) or {}).network or "xmpp";
-- Federated domains whose users get wallets too (local hosts always do,
-- anonymous hosts never).
local wallet_domains = module:get_option_set("tally_wallet_domains", {});
local grant_jids = module:get_option_set("tally_grant_jids", {});
local EFFECTS_PER_WAKEUP = 512;

-- The engine's command words, from the engine (no list of our own).
local words = {};
for _, doc in ipairs(tally.describe()) do words[doc.word] = doc; end

local HINTS = {
	[tally.HINT_LOG_IN] = " (use an account on this server: guests and other servers have no wallet here)";
	[tally.HINT_SEND_PRIVATELY] = " (send it to " .. shop_jid .. ")";
	[tally.HINT_ADMIN_ROLE] = " (the server's admins)";
	[tally.HINT_HOST_ROLE] = " (the room's owners and admins)";
	[tally.HINT_GRANT_PRIVILEGE] = " (listed in tally_grant_jids)";
	[tally.HINT_ALREADY_SAID] = " (a message already in the room cannot be taken back)";
};

-- ---- identity ------------------------------------------------------------------
-- The wallet account of a bare JID, or "" (not logged in, as the engine sees it).
local function wallet_of(bare)
	if not bare then return ""; end
	local node, host = jid_util.split(bare);
	if not node then return ""; end
	local h = prosody.hosts[host];
	if h and h.type == "local" then
		local auth = module:context(host):get_option_string("authentication", "internal_hashed");
		if auth == "anonymous" then return ""; end
		return bare;
	end
	if wallet_domains:contains(host) then return bare; end
	return "";
end

local function roles_of(bare, room)
	local roles = 0;
	if room then
		local aff = room:get_affiliation(bare);
		if aff == "owner" or aff == "admin" then roles = roles | tally.ROLE_HOST | tally.ROLE_MODERATOR; end
		for _, o in room:each_occupant() do
			if o.bare_jid == bare and o.role == "moderator" then roles = roles | tally.ROLE_MODERATOR; end
		end
	end
	if usermanager.is_admin(bare, module.host) then roles = roles | tally.ROLE_ADMIN; end
	if grant_jids:contains(bare) then roles = roles | tally.ROLE_GRANT; end
	return roles;
end

-- ---- effects -------------------------------------------------------------------
local function say_to(to, text)
	local msg = st.message({ to = to, from = shop_jid, type = "chat", id = "tally-" .. tostring(shared.next_out) })
		:text_tag("body", text);
	shared.next_out = shared.next_out + 1;
	module:send(msg);
end

local function room_of(room_jid)
	local h = prosody.hosts[jid_util.host(room_jid) or ""];
	local muc = h and h.modules and h.modules.muc;
	return muc and muc.get_room_from_jid(room_jid);
end

local function announce(room, text)
	local msg = st.message({ from = room.jid .. "/" .. nick, type = "groupchat", id = "tally-" .. tostring(shared.next_out) })
		:text_tag("body", text);
	shared.next_out = shared.next_out + 1;
	room:broadcast_message(msg);
end

-- In a room, people are named by their nick there, never by their JID:
-- in a semi-anonymous room the occupants do not see each other's JIDs,
-- and tally must not tell them. The effect's ACCOUNT arguments say where
-- the engine put a name; one not in the room is shown by its localpart.
local function nick_in(room, bare)
	for _, o in room:each_occupant() do
		if o.bare_jid == bare then return select(3, jid_util.split(o.nick)); end
	end
	return jid_util.node(bare) or bare;
end

local function render_for_room(room, e)
	if not room or (e.args or "") == "" then return e.text; end
	local args = tally.args_parse(e.text, e.args);
	if not args then return e.text; end
	local out, pos = {}, 1;
	for _, a in ipairs(args) do
		if a.kind == tally.ARG_ACCOUNT and a.start >= pos then
			out[#out + 1] = e.text:sub(pos, a.start - 1);
			out[#out + 1] = nick_in(room, e.text:sub(a.start, a.start + a.len - 1));
			pos = a.start + a.len;
		end
	end
	out[#out + 1] = e.text:sub(pos);
	return table.concat(out);
end

local function on_effect(e)
	if e.kind == tally.EFFECT_ANNOUNCE or e.kind == tally.EFFECT_TOPIC or e.kind == tally.EFFECT_MODERATORS then
		e.text = render_for_room(room_of(e.channel), e);
	end
	local text = e.text;
	if HINTS[e.hint or 0] then text = text .. HINTS[e.hint]; end
	if e.kind == tally.EFFECT_REPLY then
		-- The answer to a room line names the room: the chat with the shop
		-- is one window for every room the user is in.
		if e.channel ~= "" then text = "[" .. e.channel .. "] " .. text; end
		if e.origin ~= "" then say_to(e.origin, text); end
	elseif e.kind == tally.EFFECT_ANNOUNCE then
		local room = room_of(e.channel);
		if room then announce(room, text); end
	elseif e.kind == tally.EFFECT_MODERATORS then
		local room = room_of(e.channel);
		if room then
			for _, o in room:each_occupant() do
				-- "[room, moderators]": not an answer to a line the moderator said there.
				if o.role == "moderator" then say_to(o.bare_jid, "[" .. e.channel .. ", moderators] " .. text); end
			end
		end
	elseif e.kind == tally.EFFECT_ROSTER then
		local room = room_of(e.channel);
		if room then
			for _, o in room:each_occupant() do
				local account = wallet_of(o.bare_jid);
				if account ~= "" then
					shared.engine:presence({ account = account, channel = room.jid, present = true, network = network });
				end
			end
		end
	elseif e.kind == tally.EFFECT_TOPIC then
		-- A pinned highlight becomes the room's subject; "" puts back the
		-- subject from before tally's first change.
		local room = room_of(e.channel);
		if room then
			shared.topics = shared.topics or {};
			if e.text == "" then
				local old = shared.topics[room.jid];
				if old then
					room:set_subject(old.from or room.jid, old.subject);
					shared.topics[room.jid] = nil;
				end
			else
				if not shared.topics[room.jid] then
					local from, subject = room:get_subject();
					shared.topics[room.jid] = { from = from, subject = subject or "" };
				end
				room:set_subject(room.jid .. "/" .. nick, e.text);
			end
			room:save();
		end
	elseif e.kind == tally.EFFECT_STATUS then
		module:log(e.code == tally.OK and "info" or "warn", "tally: engine status %s: %s", tally.err_name(e.code), text);
	end
end

local function pump()
	local engine = shared.engine;
	if not engine then return; end
	local n, err = engine:drain(on_effect, EFFECTS_PER_WAKEUP);
	if err then module:log("error", "tally: an effect failed: %s", tostring(err)); end
	return n;
end

-- ---- the engine, once per process --------------------------------------------------
local function start_engine()
	if shared.engine then return; end
	local cfg = module:get_option("tally_config");
	if type(cfg) ~= "table" then
		error("mod_tally: tally_config = { dsn = ... } is required (engine keys: tally config)");
	end
	if not cfg.network then cfg.network = network; end
	local engine, code, why = tally.new(cfg);
	if not engine then error("mod_tally: " .. tostring(why) .. " (" .. tally.err_name(code) .. ")"); end
	local ok, code2 = engine:start();
	if not ok then error("mod_tally: cannot start the engine: " .. tally.strerror(code2)); end
	shared.engine = engine;
	shared.next_req = 0;
	shared.next_out = 1;
	shared.watch = server.watchfd(engine:fd(), pump);
	shared.owner = module.host;
	module:log("info", "tally: engine started (network %s, shop %s)", network, shop_jid);
end

-- ---- commands ------------------------------------------------------------------------
-- "!buy tee" or "/buy tee" (rooms), also "BUY tee" (direct): the engine's
-- text "BUY tee", or nil when it is not a tally command.
local function command_text(body, direct)
	if not body or body == "" then return nil; end
	local rest = body;
	local first = body:sub(1, 1);
	local prefixed = false;
	for _, p in ipairs(prefixes) do if first == p then prefixed = true; end end
	if prefixed then rest = body:sub(2);
	elseif not direct then return nil; end
	local word, tail = rest:match("^(%S+)(.*)$");
	if not word then return nil; end
	word = word:upper();
	if not words[word] then return nil; end
	return word .. tail;
end

local function submit(origin_jid, account, stanza, room, text)
	shared.next_req = shared.next_req + 1;
	local bare = jid_util.bare(origin_jid);
	local ok, code = shared.engine:submit({
		req_id = shared.next_req, origin = origin_jid, account = account,
		nick = jid_util.node(bare) or "", channel = room and room.jid or "",
		msg_id = stanza.attr.id or ("noid-" .. tostring(shared.next_req)), text = text,
		roles = roles_of(bare, room), network = network,
	});
	if not ok then say_to(origin_jid, "tally: " .. tally.strerror(code)); end
end

start_engine();
if module:get_host_type() == "component" and module:get_option_string("component_module") == "muc" then
	-- A room line that is a tally command is not broadcast (nor archived):
	-- the sender gets the answer from the shop. Priority 10: after the role
	-- check (50), before the broadcast.
	module:hook("muc-occupant-groupchat", function(event)
		local stanza = event.stanza;
		local text = command_text(stanza:get_child_text("body"), false);
		if not text then return; end
		if not shared.engine then return; end
		local ok = tally.text_check(text);
		local from = event.from or stanza.attr.from;
		if not ok then
			say_to(from, "tally: " .. tally.strerror(select(2, tally.text_check(text))));
			return true;
		end
		local bare = jid_util.bare(from);
		submit(from, wallet_of(bare), stanza, event.room, text);
		return true;
	end, 10);

	-- Presence in the room counts as attendance (the engine ignores rooms
	-- without a running event).
	module:hook("muc-occupant-joined", function(event)
		local account = wallet_of(event.occupant and event.occupant.bare_jid);
		if shared.engine and account ~= "" then
			shared.engine:presence({ account = account, channel = event.room.jid, present = true, network = network });
		end
	end);
	module:hook("muc-occupant-left", function(event)
		local account = wallet_of(event.occupant and event.occupant.bare_jid);
		if shared.engine and account ~= "" then
			shared.engine:presence({ account = account, channel = event.room.jid, present = false, network = network });
		end
	end);
else
	-- Direct messages to the shop's JID take every command.
	module:hook("message/bare", function(event)
		local stanza = event.stanza;
		if jid_util.bare(stanza.attr.to) ~= shop_jid then return; end
		-- An error is never answered (two servers would bounce errors
		-- forever); a groupchat message to a person's JID is the client's
		-- mistake: it is told so, as the XMPP rules have it.
		if stanza.attr.type == "error" then
			module:log("debug", "tally: an error stanza to the shop from %s, not answered", tostring(stanza.attr.from));
			return true;
		end
		if stanza.attr.type == "groupchat" then
			module:send(st.error_reply(stanza, "modify", "bad-request",
				"tally: send commands to the shop as chat messages"));
			return true;
		end
		local body = stanza:get_child_text("body");
		if not body then return true; end -- chat states, receipts: nothing to answer
		local from = stanza.attr.from;
		-- Everything said to the shop is for the engine: it answers an
		-- unknown word itself ("unknown command. Try: TALLY HELP").
		local text = command_text(body, true) or body;
		local ok, code = tally.text_check(text);
		if not ok then say_to(from, "tally: " .. tally.strerror(code)); return true; end
		submit(from, wallet_of(jid_util.bare(from)), stanza, nil, text);
		return true;
	end, 10);
end

-- ---- XEP-0050 ad-hoc commands on the server's JID (the VirtualHost) ------------------
-- Forms made from the engine's usage lines (tally_adhoc.lib.lua): a GUI
-- client shows them in its "commands" menu. Open to local users; the engine
-- decides what each may do (creator role, room host), as for typed lines.
if module:get_host_type() ~= "component" then
	module:depends("adhoc");
	local adhoc_new = module:require "adhoc".new;
	local adhoc_util = require "util.adhoc";
	local new_id = require "util.id".medium;
	local forms = module:require "tally_adhoc";
	for _, f in ipairs(forms.forms(tally.describe())) do
		local layout = forms.layout(f);
		local handler = adhoc_util.new_simple_form(layout, function(fields, err, data)
			if err then
				local why = {};
				for k, v in pairs(err) do why[#why + 1] = k .. ": " .. tostring(v); end
				return { status = "completed", error = { message = table.concat(why, "; ") } };
			end
			local line, room_jid = forms.line(f, fields);
			if not line then return { status = "completed", error = { message = room_jid } }; end
			local room;
			if f.room then
				room = room_of(room_jid);
				if not room then return { status = "completed", error = { message = "no such room: " .. room_jid } }; end
			end
			local ok, code = tally.text_check(line);
			if not ok then return { status = "completed", error = { message = tally.strerror(code) } }; end
			submit(data.from, wallet_of(jid_util.bare(data.from)), { attr = { id = "adhoc-" .. new_id() } }, room, line);
			return { status = "completed",
				info = "Sent to the shop: " .. line .. ". Its answer comes as a chat message from " .. shop_jid .. "." };
		end);
		module:provides("adhoc", adhoc_new("tally: " .. f.title, f.node, handler, "local_user"));
	end
end

function module.unload()
	if shared.owner == module.host and shared.engine then
		if shared.watch then shared.watch:close(); end
		shared.engine:free();
		shared.engine = nil;
		shared.owner = nil;
	end
end

-- tally_adhoc.lib.lua — XEP-0050 ad-hoc commands with XEP-0004 forms, made
-- from the engine's own command descriptions (tally.describe(): each word's
-- usage line), so a GUI client shows a form where IRC users type syntax and
-- the forms cannot drift from what the engine parses.
--
-- A usage line like
--   ADD <sku> <price> [stock] <title> | ITEM SET <sku> price|stock|title <value> | ITEM DEL <sku>
-- becomes one command per form ("ITEM ADD", "ITEM SET", "ITEM DEL"): <x> is a
-- required field, [x] an optional one, [k=<v>] or [k=N] an optional field
-- sent as k=value, [flag] a checkbox sent as the word, a|b|c a choice; the
-- last <...> field takes the rest of the line (a title, a message). Only the
-- words for creators, hosts and operators get forms; a host's command gets a
-- room field (it runs in that room). Submitting builds the command line and
-- hands it to `submit`, whose answer comes as a chat message from the shop.

local dataforms = require "util.dataforms";

local M = {};

-- Splits a usage alternative into tokens, keeping <...> and [...] whole.
local function tokens(s)
	local out, i = {}, 1;
	while i <= #s do
		local c = s:sub(i, i);
		if c == " " then
			i = i + 1;
		else
			local close = (c == "<" and ">") or (c == "[" and "]") or nil;
			local j;
			if close then
				local depth, k = 0, i;
				repeat
					local ch = s:sub(k, k);
					if ch == c then depth = depth + 1; elseif ch == close then depth = depth - 1; end
					k = k + 1;
				until depth == 0 or k > #s;
				j = k - 1;
			else
				j = (s:find(" ", i, true) or (#s + 1)) - 1;
			end
			out[#out + 1] = s:sub(i, j);
			i = j + 1;
		end
	end
	return out;
end

local function field_name(label)
	return (label:lower():gsub("[^%w]+", "_"):gsub("^_+", ""):gsub("_+$", ""));
end

-- One form from "SUB <a> [b] ...", or nil for a form with no arguments
-- nor sub word (nothing to fill in: the word alone is typed faster).
local function form_of(word, alt, group)
	local toks = tokens(alt);
	if toks[1] == word then table.remove(toks, 1); end
	local sub;
	if toks[1] and toks[1]:match("^%u[%u%-]*$") then sub = table.remove(toks, 1); end
	if sub and sub:find("|", 1, true) then return nil; end -- START|STOP: two words, typed as they are
	local fields = {};
	for _, t in ipairs(toks) do
		local open = t:sub(1, 1);
		local inner = (open == "<" or open == "[") and t:sub(2, -2) or t;
		local key, value = inner:match("^([%w%-]+)=(.*)$");
		if key then                                    -- [per-user=N], [max=<price>]
			fields[#fields + 1] = { name = field_name(key), label = key .. " (" .. value .. ")", prefix = key .. "=" };
		elseif open == "[" and inner:find("-", 1, true) and not inner:find(" ", 1, true) then -- [attendees-only]
			fields[#fields + 1] = { name = field_name(inner), label = inner, flag = inner, type = "boolean" };
		elseif open ~= "<" and open ~= "[" and t:find("|", 1, true) then -- price|stock|title
			local options = {};
			for o in t:gmatch("[^|]+") do options[#options + 1] = o; end
			fields[#fields + 1] = { name = "which", label = "which", type = "list-single", options = options,
				required = true };
		else                                           -- <sku> required, [stock] optional
			fields[#fields + 1] = { name = field_name(inner), label = inner, required = open == "<" };
		end
	end
	if not sub and #fields == 0 then return nil; end
	local title = word .. (sub and (" " .. sub) or "");
	return { word = word, sub = sub, title = title, fields = fields, room = group == 3,
		node = "tally/" .. title:lower():gsub(" ", "-") };
end

-- The forms of every described word for creators (2), hosts (3), operators
-- (4), and the admin forms some words add (TALLY GRANT, TALLY ROLE: the
-- doc's operator_usage).
function M.forms(docs)
	local out = {};
	local function add(word, usage, group)
		for alt in (usage .. " | "):gmatch("(.-) | ") do
			local f = form_of(word, alt, group);
			if f then out[#out + 1] = f; end
		end
	end
	for _, doc in ipairs(docs) do
		if doc.group >= 2 then add(doc.word, doc.usage, doc.group); end
		if (doc.operator_usage or "") ~= "" then add(doc.word, doc.operator_usage, 4); end
	end
	return out;
end

-- The XEP-0004 layout of a form.
function M.layout(f)
	local layout = { title = "tally: " .. f.title, instructions = "The shop answers in a chat message." };
	if f.room then
		layout[#layout + 1] = { name = "room", type = "jid-single", label = "room (its JID)", required = true };
	end
	for _, fld in ipairs(f.fields) do
		local l = { name = fld.name, label = fld.label, type = fld.type or "text-single", required = fld.required };
		if fld.options then l.options = fld.options; end
		layout[#layout + 1] = l;
	end
	return dataforms.new(layout);
end

-- The command line from submitted fields; nil, why for a missing field.
function M.line(f, fields)
	local parts = { f.word };
	if f.sub then parts[#parts + 1] = f.sub; end
	for _, fld in ipairs(f.fields) do
		local v = fields[fld.name];
		if fld.type == "boolean" then
			if v then parts[#parts + 1] = fld.flag; end
		elseif v ~= nil and v ~= "" then
			parts[#parts + 1] = (fld.prefix or "") .. tostring(v);
		elseif fld.required then
			return nil, fld.label .. " is required";
		end
	end
	return table.concat(parts, " "), fields.room;
end

return M;

/* m_tally.cpp — InspIRCd 3 adapter for the tally live-commerce engine.
 *
 * A thin translator, no business rules: it turns IRC input into tally
 * commands and the engine's effects back into IRC messages.
 *
 *   client command  BUY sku 2          -> tally_command{text "BUY sku 2", channel ""}
 *   channel line    !buy sku 2 (#shop) -> tally_command{text "BUY sku 2", channel "#shop"}
 *   REPLY effect                       -> server NOTICE to the user (found again by UUID);
 *                                         to a channel line: "[#shop] text" (SendChannelAnswer);
 *                                         a hint adds its IRC phrase (HintPhrase)
 *   ANNOUNCE effect                    -> server NOTICE to the channel; a command in it
 *                                         ("Type: BUY sku") as typed here: "!buy sku" (RoomText)
 *   MODERATORS effect                  -> server NOTICE to @#channel (%#channel with halfop)
 *   STATUS effect                      -> server log
 *
 * The engine runs on its own thread. The main loop never waits for it:
 * submitting copies a frame into a lock-free queue, and effects come back
 * through the engine's fd, which the SocketEngine watches like a socket.
 * Only the main loop touches User and Channel objects.
 *
 * Configuration is one <tally> tag; see docs/IRC.md. Attributes that are
 * engine keys go to tally_config_set() (unknown ones are refused by it);
 * `<key>file="path"` reads a secret such as the DSN from a file. Module keys:
 * prefix, channel_answer_prefix, cmd_<word> (rename or, when empty, disable a
 * command word).
 */

#include "inspircd.h"
#include "modules/account.h"
#include "modules/ctctags.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <sys/stat.h>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <vector>

#include "tally.h"
#include "tally/frames.h"
#include "tally_irc.h"

using namespace tallyirc;

namespace {

/* Effects handled per wakeup, so a flood of effects cannot starve clients:
 * the fd stays readable and the SocketEngine calls us again next tick. */
const size_t EFFECTS_PER_WAKEUP_MAX = 512;

} // namespace

class ModuleTally;

namespace {

/* Watches the engine's fd on the main loop. */
class EffectPump : public EventHandler
{
	ModuleTally* const mod;
 public:
	EffectPump(ModuleTally* m) : mod(m) { }
	void OnEventHandlerRead() CXX11_OVERRIDE;
	void OnEventHandlerWrite() CXX11_OVERRIDE { }
	void OnEventHandlerError(int errornum) CXX11_OVERRIDE;
};

/* The IRCv3 client tag +draft/channel-context on a private answer to a
 * line said in a channel (`!shop` in #live): clients that support it show
 * the answer in that channel's window. Sent only to clients that
 * negotiated message-tags (m_ircv3_ctctags); others get the plain NOTICE. */
class ChannelContextTag : public ClientProtocol::MessageTagProvider
{
	CTCTags::CapReference ctctags;
 public:
	ChannelContextTag(Module* mod)
		: ClientProtocol::MessageTagProvider(mod)
		, ctctags(mod)
	{
	}

	bool ShouldSendTag(LocalUser* user, const ClientProtocol::MessageTagData& tagdata) CXX11_OVERRIDE
	{
		return ctctags.get(user);
	}
};

/* One registered client command, e.g. BUY (or its configured rename). */
class CommandTally : public SplitCommand
{
	ModuleTally* const mod;
 public:
	const std::string word; /* the engine's word for it */

	CommandTally(ModuleTally* m, const std::string& typed, const std::string& engine_word);
	CmdResult HandleLocal(LocalUser* user, const Params& parameters) CXX11_OVERRIDE;
};

} // namespace

class ModuleTally : public Module
{
	tally_engine* engine;
	EffectPump pump;
	ChannelContextTag contexttag;
	Settings settings;
	std::vector<CommandTally*> commands;
	uint64_t next_req;
	std::string id_stem; /* "<sid>-<load time in µs>-": unique per module load */

	void Log(const std::string& msg)
	{
		ServerInstance->Logs->Log(MODNAME, LOG_DEFAULT, "%s", msg.c_str());
	}

	void StartEngine(const Settings& s)
	{
		if ((tally_version() >> 16) != TALLY_VERSION_MAJOR)
			throw ModuleException("libtally major version differs from the one m_tally was built for");
		tally_config cfg;
		s.Apply(&cfg);
		s.PrepareKeyDir();
		char err[TALLY_ERRBUF_BYTES] = "";
		tally_engine* e = NULL;
		int rc = tally_engine_new(&cfg, &e, err, sizeof err);
		if (rc != TALLY_OK)
			throw ModuleException(std::string("tally: ") + (err[0] ? err : tally_strerror(rc)));
		rc = tally_engine_start(e);
		if (rc != TALLY_OK)
		{
			tally_engine_free(e);
			throw ModuleException(std::string("tally: cannot start engine: ") + tally_strerror(rc));
		}
		pump.SetFd(tally_engine_fd(e));
		if (!pump.HasFd() || !SocketEngine::AddFd(&pump, FD_WANT_POLL_READ | FD_WANT_NO_WRITE))
		{
			tally_engine_stop(e);
			tally_engine_free(e);
			pump.SetFd(-1);
			throw ModuleException("tally: cannot watch the engine fd");
		}
		engine = e;
	}

	void StopEngine()
	{
		if (!engine)
			return;
		if (pump.HasFd())
		{
			SocketEngine::DelFd(&pump);
			pump.SetFd(-1);
		}
		/* Unload, reload or shutdown: the main loop must not wait for
		 * PostgreSQL, so batches in flight are left to it (their outcome is
		 * decided there and the next start rebuilds from the ledger). Their
		 * buyers' "pending" answers are in the effect queue: deliver them
		 * before freeing. Should the thread not be out within the limit (it
		 * was connecting), wait for it all the same: this module's code,
		 * which the thread runs, leaves with the module. */
		struct timespec t0, t1;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		if (tally_engine_stop_within(engine, TALLY_ENGINE_STOP_FAST_MS) != TALLY_OK)
		{
			Log("tally: the engine thread is still connecting to PostgreSQL; waiting for it to stop");
			tally_engine_stop(engine);
		}
		clock_gettime(CLOCK_MONOTONIC, &t1);
		Log("tally: engine stopped in " + ConvToStr((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000)
			+ " ms");
		while (tally_engine_drain(engine, EffectCallback, this, EFFECTS_PER_WAKEUP_MAX) > 0)
		{
		}
		tally_engine_free(engine);
		engine = NULL;
	}

	void RegisterCommands()
	{
		for (std::map<std::string, std::string>::const_iterator w = settings.words.begin(); w != settings.words.end(); ++w)
		{
			CommandTally* c = new CommandTally(this, w->first, w->second);
			commands.push_back(c);
			try
			{
				ServerInstance->Modules->AddService(*c);
			}
			catch (ModuleException& ex)
			{
				throw ModuleException("tally: cannot add command " + w->first + " (" + ex.GetReason()
					+ "); rename it with <tally cmd_" + Upper(w->second) + "=\"...\">");
			}
		}
	}

	void DeleteCommands()
	{
		for (size_t i = 0; i < commands.size(); ++i)
			delete commands[i];
		commands.clear();
	}

	std::string NextMsgId()
	{
		return id_stem + ConvToStr(next_req);
	}

	/* IRC ranks -> the engine's generic roles; what each role may do is
	 * decided in core (tally_command_doc.roles), not here. */
	static uint32_t Roles(User* user, Channel* chan)
	{
		uint32_t roles = 0;
		if (user->IsOper())
			roles |= TALLY_ROLE_ADMIN;
		/* Creating credits is a privilege of its own (<class privs="tally/grant">),
		 * not something every operator class may do. */
		if (user->IsOper() && user->HasPrivPermission("tally/grant"))
			roles |= TALLY_ROLE_GRANT;
		/* Channel op and above (+o, and +a/+q of customprefix): hosts, who
		 * moderate too. Halfop (+h, customprefix rank 20000): moderates (HIDE,
		 * HIGHLIGHT REMOVE) but does not run events or drops. */
		unsigned int rank = chan ? chan->GetPrefixValue(user) : 0;
		if (rank >= OP_VALUE)
			roles |= TALLY_ROLE_HOST | TALLY_ROLE_MODERATOR;
		else if (rank >= HALFOP_VALUE)
			roles |= TALLY_ROLE_MODERATOR;
		return roles;
	}

	/* The status prefix that reaches every moderator of a channel: '%' when
	 * a halfop prefix mode (rank HALFOP_VALUE, below op) is loaded, else
	 * '@'. Never a prefix that is not a mode: the notice would go to all. */
	static char ModeratorStatus()
	{
		PrefixMode* half = ServerInstance->Modes.FindPrefix('%');
		if (half && half->GetPrefixRank() >= HALFOP_VALUE && half->GetPrefixRank() < OP_VALUE)
			return '%';
		return '@';
	}

 public:
	ModuleTally()
		: engine(NULL)
		, pump(this)
		, contexttag(this)
		, next_req(0)
	{
		/* Microseconds, so a reload within the same second cannot reuse an
		 * idempotency key. */
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		id_stem = ServerInstance->Config->GetSID() + "-" + ConvToStr(uint64_t(ts.tv_sec) * 1000000u
			+ uint64_t(ts.tv_nsec / 1000)) + "-";
	}

	~ModuleTally()
	{
		StopEngine();
		DeleteCommands();
	}

	CullResult cull() CXX11_OVERRIDE
	{
		StopEngine();
		return Module::cull();
	}

	void Prioritize() CXX11_OVERRIDE
	{
		/* Last, so channel bans, +m and other modules' checks decide first,
		 * and ircv3_msgid has already stamped the message. */
		ServerInstance->Modules->SetPriority(this, I_OnUserPreMessage, PRIORITY_LAST);
	}

	void ReadConfig(ConfigStatus& status) CXX11_OVERRIDE
	{
		Settings fresh = Settings::Read(ServerInstance->Config->ConfValue("tally"));
		if (!engine)
		{
			settings = fresh;
			StartEngine(settings);
			RegisterCommands();
			Log("tally: engine started (libtally " + ConvToStr(tally_version() >> 16) + "."
				+ ConvToStr(tally_version() & 0xFFFF) + ")");
			return;
		}

		/* Rehash: validate everything, apply what can change live (the
		 * prefix, and the engine keys the engine says are live: rate
		 * limits and the like, tally_config_key_live), report by name what
		 * needs a module reload. */
		tally_config check;
		fresh.Apply(&check);
		std::vector<std::string> live, reload;
		std::map<std::string, std::string> keys(fresh.engine);
		keys.insert(settings.engine.begin(), settings.engine.end());
		for (std::map<std::string, std::string>::const_iterator k = keys.begin(); k != keys.end(); ++k)
		{
			std::map<std::string, std::string>::const_iterator was = settings.engine.find(k->first);
			std::map<std::string, std::string>::const_iterator now = fresh.engine.find(k->first);
			if (was != settings.engine.end() && now != fresh.engine.end() && was->second == now->second)
				continue;
			(tally_config_key_live(k->first.c_str()) ? live : reload).push_back(k->first);
		}
		char reconf_err[TALLY_ERRBUF_BYTES] = "";
		if (!live.empty() && tally_engine_reconfigure(engine, &check, reconf_err, sizeof reconf_err) != TALLY_OK)
		{
			/* The values passed Apply's check, so this engine cannot change
			 * them live (e.g. one served by tallyd, whose settings are its
			 * own): a reload applies them. */
			Log(std::string("tally: cannot apply settings live here") + (reconf_err[0] ? ": " : "") + reconf_err);
			reload.insert(reload.end(), live.begin(), live.end());
			live.clear();
		}
		if (!live.empty())
		{
			std::string msg = "tally: applied";
			for (size_t i = 0; i < live.size(); ++i)
			{
				std::map<std::string, std::string>::const_iterator now = fresh.engine.find(live[i]);
				/* A live key removed from the tag is back at its default. */
				msg += " " + live[i] + "=" + (now != fresh.engine.end() ? now->second : "(default)");
				if (now != fresh.engine.end())
					settings.engine[live[i]] = now->second;
				else
					settings.engine.erase(live[i]);
			}
			Log(msg);
			if (status.srcuser)
				status.srcuser->WriteRemoteNotice(msg);
		}
		std::vector<std::string> needs_reload;
		if (!reload.empty())
		{
			std::string names = reload[0];
			for (size_t i = 1; i < reload.size(); ++i)
				names += ", " + reload[i];
			needs_reload.push_back("engine settings (" + names + ")");
		}
		if (fresh.words != settings.words)
			needs_reload.push_back("client command names");
		settings.prefix = fresh.prefix;
		settings.channel_answer_prefix = fresh.channel_answer_prefix;
		if (!needs_reload.empty())
		{
			std::string msg = "tally: changed " + needs_reload[0];
			for (size_t i = 1; i < needs_reload.size(); ++i)
				msg += " and " + needs_reload[i];
			msg += " take effect after /RELOADMODULE m_tally";
			Log(msg);
			if (status.srcuser)
				status.srcuser->WriteRemoteNotice(msg);
		}
	}

	/* Forwards one command; answers the user at once when it cannot. */
	void Submit(User* user, Channel* chan, const std::string& text, const std::string& msg_id)
	{
		const char* problem = LineProblem(text);
		if (problem)
		{
			user->WriteNotice(std::string("tally: ") + problem);
			return;
		}
		AccountExtItem* accountext = GetAccountExtItem();
		const std::string* account = accountext ? accountext->get(user) : NULL;
		const std::string id = msg_id.empty() ? NextMsgId() : msg_id;

		tally_command cmd;
		memset(&cmd, 0, sizeof cmd);
		cmd.size = sizeof cmd;
		cmd.version = TALLY_COMMAND_VERSION;
		cmd.req_id = ++next_req;
		cmd.origin = user->uuid.c_str();
		cmd.account = account ? account->c_str() : "";
		cmd.nick = user->nick.c_str();
		cmd.channel = chan ? chan->name.c_str() : "";
		cmd.msg_id = id.c_str();
		cmd.text = text.c_str();
		cmd.roles = Roles(user, chan);
		int rc = tally_engine_submit_command(engine, &cmd);
		if (rc != TALLY_OK)
			user->WriteNotice(std::string("tally: ") + tally_strerror(rc));
	}

	/* From a registered client command: WORD params... */
	void SubmitCommand(LocalUser* user, const std::string& typed, const std::string& word,
		const CommandBase::Params& params)
	{
		std::string text(word);
		size_t raw_len = typed.size();
		for (size_t i = 0; i < params.size(); ++i)
		{
			text.push_back(' ');
			text.append(params[i]);
			raw_len += 1 + params[i].size();
		}
		if (!params.empty() && (params.back().empty() || params.back().find(' ') != std::string::npos
			|| params.back()[0] == ':'))
			raw_len++; /* the ':' before a last parameter with spaces */
		if (CutByServer(raw_len))
		{
			user->WriteNotice(std::string("tally: ") + LINE_CUT_TEXT);
			return;
		}
		Submit(user, NULL, text, "");
	}

	ModResult OnUserPreMessage(User* user, const MessageTarget& target, MessageDetails& details) CXX11_OVERRIDE
	{
		/* The byte compare every other message pays. */
		if (details.text.empty() || details.text[0] != settings.prefix[0])
			return MOD_RES_PASSTHRU;
		if (target.type != MessageTarget::TYPE_CHANNEL || target.status || details.type != MSG_PRIVMSG
			|| !IS_LOCAL(user))
			return MOD_RES_PASSTHRU;

		const std::string& line = details.text;
		size_t end = line.find(' ', 1);
		if (end == std::string::npos)
			end = line.size();
		std::map<std::string, std::string>::const_iterator w = settings.words.find(Upper(line.substr(1, end - 1)));
		if (w == settings.words.end())
			return MOD_RES_PASSTHRU; /* someone else's !command */

		/* "PRIVMSG <target> :<text>" as the client sent it. */
		if (CutByServer(8 + target.Get<Channel>()->name.size() + 2 + line.size()))
		{
			user->WriteNotice(std::string("tally: ") + LINE_CUT_TEXT);
			return MOD_RES_DENY;
		}

		std::string msg_id;
		ClientProtocol::TagMap::const_iterator tag = details.tags_out.find("msgid");
		if (tag != details.tags_out.end() && tag->second.value.size() < TALLY_NAME_BYTES_MAX)
			msg_id = tag->second.value;
		Submit(user, target.Get<Channel>(), w->second + line.substr(end), msg_id);
		return MOD_RES_DENY;
	}

	/* Attendance: members with a services account entering or leaving a
	 * channel. Local users only: every server of the network reports its
	 * own (a remote user's join, and a netsplit's mass quits, are another
	 * server's to report, or nobody's). One small frame per join or part;
	 * the engine ignores channels without a running event. A full queue drops it (attendance
	 * is best effort; money never depends on it). */
	void Presence(User* user, Channel* chan, bool present)
	{
		if (!engine || !user || !chan || !IS_LOCAL(user))
			return;
		AccountExtItem* accountext = GetAccountExtItem();
		const std::string* account = accountext ? accountext->get(user) : NULL;
		if (!account || account->empty())
			return;
		tally_presence p;
		memset(&p, 0, sizeof p);
		p.size = sizeof p;
		p.version = TALLY_PRESENCE_VERSION;
		p.account = account->c_str();
		p.channel = chan->name.c_str();
		p.present = present ? 1 : 0;
		tally_engine_submit_presence(engine, &p);
	}

	void OnPostJoin(Membership* memb) CXX11_OVERRIDE
	{
		Presence(memb->user, memb->chan, true);
	}

	void OnUserPart(Membership* memb, std::string& partmessage, CUList& except_list) CXX11_OVERRIDE
	{
		Presence(memb->user, memb->chan, false);
	}

	void OnUserKick(User* source, Membership* memb, const std::string& reason, CUList& except_list) CXX11_OVERRIDE
	{
		Presence(memb->user, memb->chan, false);
	}

	void OnUserQuit(User* user, const std::string& message, const std::string& oper_message) CXX11_OVERRIDE
	{
		for (User::ChanList::iterator i = user->chans.begin(); i != user->chans.end(); ++i)
			Presence(user, (*i)->chan, false);
	}

	/* Paid highlights as the topic (highlight_topic): the first change
	 * keeps the channel's own topic, "" puts it back. */
	std::map<std::string, std::string> saved_topics;

	void SetTopic(const std::string& name, const std::string& text)
	{
		Channel* chan = ServerInstance->FindChan(name);
		if (!chan)
			return;
		std::map<std::string, std::string>::iterator saved = saved_topics.find(name);
		if (text.empty())
		{
			if (saved == saved_topics.end())
				return;
			chan->SetTopic(ServerInstance->FakeClient, saved->second, ServerInstance->Time());
			saved_topics.erase(saved);
			return;
		}
		if (saved == saved_topics.end())
			saved_topics[name] = chan->topic;
		chan->SetTopic(ServerInstance->FakeClient, text, ServerInstance->Time());
	}

	/* The answer to a line said in a channel (`!shop` in #live). A plain
	 * server NOTICE lands in irssi's status window and WeeChat's server
	 * buffer, away from the channel the user typed in. Both clients show a
	 * private notice whose text starts with "[#channel]" in that channel's
	 * window (irssi: notice_channel_context; WeeChat:
	 * irc.look.notice_welcome_redirect; both on by default), irssi only when
	 * the source has a user@host part, never for a server notice. So with
	 * channel_answer_prefix (the default) the answer starts with "[#live] "
	 * and comes from "<server>!tally@<server>": a nick no user can hold, so
	 * no user can pose as it. Clients that negotiated message-tags also get
	 * +draft/channel-context. The engine's answers are short (the longest,
	 * a SHOP line, is about 250 bytes), so prefix and source still fit the
	 * server's 512-byte line even for a 64-byte channel name and a 30-byte nick. */
	void SendChannelAnswer(User* user, const std::string& channel, const std::string& text)
	{
		const std::string head = settings.channel_answer_prefix ? "[" + channel + "] " : "";
		LocalUser* local = IS_LOCAL(user);
		if (!local)
		{
			/* Another server's user: a server notice (its own server routes it). */
			user->WriteRemoteNotice(head + text);
			return;
		}
		/* Without the prefix, the source is the server's name alone, as in
		 * User::WriteNotice. */
		const std::string& server = ServerInstance->Config->GetServerName();
		const std::string source = settings.channel_answer_prefix ? server + "!tally@" + server : server;
		const std::string line = head + text;
		ClientProtocol::Messages::Privmsg msg(ClientProtocol::Messages::Privmsg::nocopy,
			source, local, line, MSG_NOTICE);
		msg.AddTag("+draft/channel-context", &contexttag, channel);
		local->Send(ServerInstance->GetRFCEvents().privmsg, msg);
	}

	/* The IRC words for what a refusal's hint asks to explain (enum
	 * tally_hint): the engine's text is network-neutral and complete, this
	 * says how it is done here. Unknown hints (a newer engine) add nothing. */
	static const char* HintPhrase(const tally_effect* effect)
	{
		if (effect->version < 2 || effect->size < sizeof(tally_effect))
			return "";
		switch (effect->hint)
		{
			case TALLY_HINT_LOG_IN:
				return " (/msg NickServ IDENTIFY <password>)";
			case TALLY_HINT_SEND_PRIVATELY:
				return " (as a client command: /quote and the same words)";
			case TALLY_HINT_ADMIN_ROLE:
				return "; admins here are the IRC operators";
			case TALLY_HINT_HOST_ROLE:
				return " (on IRC: its channel operators)";
			case TALLY_HINT_GRANT_PRIVILEGE:
				return " (the oper privilege tally/grant)";
			case TALLY_HINT_ALREADY_SAID:
				return " (a message already said cannot be taken back on IRC)";
			default:
				return "";
		}
	}

	/* A command the engine names (TALLY_ARG_COMMAND, "BUY sku") the way it
	 * is typed in a channel here: the prefix, the word as configured
	 * (cmd_<word> renames it) in lower case, the rest unchanged: "!buy sku".
	 * A word disabled here keeps the engine's words. */
	std::string TypedCommand(const std::string& command) const
	{
		const size_t end = std::min(command.find(' '), command.size());
		const std::string word = command.substr(0, end);
		for (std::map<std::string, std::string>::const_iterator w = settings.words.begin(); w != settings.words.end(); ++w)
			if (w->second == word)
				return settings.prefix + Lower(w->first) + command.substr(end);
		return command;
	}

	/* The text of a line said in a channel, its COMMAND spans as typed
	 * here (TypedCommand), so IRC users read "Type: !buy sku". Text only
	 * (msg 0), an older effect, or arguments that do not parse: the text
	 * as it is. Spans inside a command (its sku) are part of it. */
	std::string RoomText(const tally_effect* effect) const
	{
		const std::string text = effect->text ? effect->text : "";
		if (effect->version < 3 || effect->size < TALLY_SIZE_THROUGH(tally_effect, args)
			|| effect->msg == TALLY_MSG_TEXT || !effect->args || !effect->args[0])
			return text;
		tally_effect_arg args[TALLY_EFFECT_ARGS_MAX];
		size_t n = 0;
		if (tally_effect_args_parse(text.c_str(), effect->args, args, TALLY_EFFECT_ARGS_MAX, &n) != TALLY_OK)
			return text;
		std::string out;
		size_t at = 0;
		for (size_t i = 0; i < n; ++i)
		{
			if (args[i].kind != TALLY_ARG_COMMAND || args[i].start < at)
				continue;
			out.append(text, at, args[i].start - at);
			out += TypedCommand(text.substr(args[i].start, args[i].len));
			at = args[i].start + args[i].len;
		}
		out.append(text, at, std::string::npos);
		return out;
	}

	void OnEffect(const tally_effect* effect)
	{
		switch (effect->kind)
		{
			case TALLY_EFFECT_REPLY:
			{
				User* user = ServerInstance->FindUUID(effect->origin ? effect->origin : "");
				if (!user || user->quitting)
					break;
				const std::string text = std::string(effect->text ? effect->text : "") + HintPhrase(effect);
				if (effect->channel && effect->channel[0])
					SendChannelAnswer(user, effect->channel, text);
				else
					user->WriteRemoteNotice(text);
				break;
			}
			case TALLY_EFFECT_ANNOUNCE:
			{
				Channel* chan = ServerInstance->FindChan(effect->channel ? effect->channel : "");
				if (chan)
					chan->WriteRemoteNotice(RoomText(effect));
				break;
			}
			case TALLY_EFFECT_MODERATORS:
			{
				/* STATUSMSG: only the channel's moderators (@, or % and above
				 * when halfop exists) see it. */
				Channel* chan = ServerInstance->FindChan(effect->channel ? effect->channel : "");
				if (chan)
					chan->WriteRemoteNotice(RoomText(effect), ModeratorStatus());
				break;
			}
			case TALLY_EFFECT_ROSTER:
			{
				Channel* chan = ServerInstance->FindChan(effect->channel ? effect->channel : "");
				if (!chan)
					break;
				const Channel::MemberMap& members = chan->GetUsers();
				for (Channel::MemberMap::const_iterator m = members.begin(); m != members.end(); ++m)
					Presence(m->first, chan, true);
				break;
			}
			case TALLY_EFFECT_TOPIC:
				SetTopic(effect->channel ? effect->channel : "", effect->text ? effect->text : "");
				break;
			case TALLY_EFFECT_ROOM:
				/* A room's settings (ROOM SET): IRC has no threads and a
				 * module sees command lines before the channel does (they are
				 * never shown, nothing to redact); answers stay notices. */
				break;
			case TALLY_EFFECT_STATUS:
				Log(std::string("tally: engine status ") + tally_err_name(effect->code) + ": "
					+ (effect->text ? effect->text : ""));
				break;
			default:
				Log("tally: ignoring effect of unknown kind " + ConvToStr(effect->kind));
				break;
		}
	}

	static void EffectCallback(void* ud, const tally_effect* effect)
	{
		static_cast<ModuleTally*>(ud)->OnEffect(effect);
	}

	void Pump()
	{
		if (engine)
			tally_engine_drain(engine, EffectCallback, this, EFFECTS_PER_WAKEUP_MAX);
	}

	void PumpError(int errornum)
	{
		Log(std::string("tally: error on engine fd: ") + strerror(errornum));
	}

	Version GetVersion() CXX11_OVERRIDE
	{
		return Version("Live commerce: SHOP, BUY, TIP, WALLET and friends via the tally engine");
	}
};

namespace {

void EffectPump::OnEventHandlerRead()
{
	mod->Pump();
}

void EffectPump::OnEventHandlerError(int errornum)
{
	mod->PumpError(errornum);
}

CommandTally::CommandTally(ModuleTally* m, const std::string& typed, const std::string& engine_word)
	: SplitCommand(m, typed, 0)
	, mod(m)
	, word(engine_word)
{
	syntax = "[<arguments>]";
	allow_empty_last_param = true;
}

CmdResult CommandTally::HandleLocal(LocalUser* user, const Params& parameters)
{
	mod->SubmitCommand(user, name, word, parameters);
	return CMD_SUCCESS;
}

} // namespace

MODULE_INIT(ModuleTally)

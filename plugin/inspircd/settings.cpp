/* settings.cpp — the InspIRCd adapter's <tally> tag: engine keys, module keys
 * (prefix, channel_answer_prefix, cmd_<word>), secrets read from files, the
 * signing key's default place and the remote-mode defaults (tally_irc.h). */
#include "tally_irc.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sys/stat.h>

#include "tally/frames.h"

namespace tallyirc {

namespace {

/* The signing key when <tally> names none: in the server's data directory
 * (<path datadir>), like every other file InspIRCd keeps, not relative to
 * whatever directory the server was started from. */
const char* const SIGNING_KEY_DEFAULT_NAME = "tally-signing.pem";

/* A missing data directory is created private: it will hold the key. */
const mode_t KEY_DIR_MODE = 0700;

/* Secret files (DSN) are small; anything bigger is a mistake. */
const std::streamsize SECRET_FILE_BYTES_MAX = 4096;

std::string ReadSecretFile(const std::string& path)
{
	std::ifstream in(path.c_str(), std::ios::in | std::ios::binary);
	if (!in)
		throw ModuleException("<tally> cannot read " + path + ": " + strerror(errno));
	std::string data(size_t(SECRET_FILE_BYTES_MAX) + 1, '\0');
	in.read(&data[0], SECRET_FILE_BYTES_MAX + 1);
	data.resize(size_t(in.gcount()));
	if (data.size() > size_t(SECRET_FILE_BYTES_MAX))
		throw ModuleException("<tally> " + path + " is larger than 4 KiB");
	while (!data.empty() && (data.back() == '\n' || data.back() == '\r' || data.back() == ' '))
		data.pop_back();
	return data;
}

bool ParseYesNo(const std::string& key, const std::string& value)
{
	const std::string v = Upper(value);
	if (v == "YES" || v == "TRUE" || v == "ON" || v == "1")
		return true;
	if (v == "NO" || v == "FALSE" || v == "OFF" || v == "0")
		return false;
	throw ModuleException("<tally:" + key + "> must be yes or no, not '" + value + "'");
}

void CollectKey(void* ud, const char* key, const char* default_text, const char* help)
{
	static_cast<std::vector<std::string>*>(ud)->push_back(key);
}

} // namespace

/* The signing key's directory must exist before the engine creates the
 * key in it (on first start). The default one, the server's data
 * directory, is created when missing; one the admin named is not (a
 * typo would otherwise grow a directory), and the error names it. */
void Settings::PrepareKeyDir() const
{
	const std::string& key = engine.find("signing_key")->second;
	const std::string::size_type slash = key.rfind('/');
	if (slash == std::string::npos || slash == 0)
		return; /* the working directory, or / itself */
	const std::string dir = key.substr(0, slash);
	struct stat st;
	if (stat(dir.c_str(), &st) == 0)
	{
		if (!S_ISDIR(st.st_mode))
			throw ModuleException("<tally:signing_key> " + dir + " is not a directory");
		return;
	}
	if (errno != ENOENT || !key_defaulted)
		throw ModuleException("<tally:signing_key> directory " + dir + ": " + strerror(errno)
			+ (key_defaulted ? "" : " (create it, or name another signing_key)"));
	if (mkdir(dir.c_str(), KEY_DIR_MODE) != 0 && errno != EEXIST)
		throw ModuleException("tally: cannot create the data directory " + dir
			+ " for the signing key: " + strerror(errno)
			+ " (create it, or set <tally signing_key=\"...\">)");
}

Settings Settings::Read(ConfigTag* tag)
{
	std::vector<std::string> known;
	tally_config_describe(CollectKey, &known);

	Settings s;
	s.prefix = "!";
	std::map<std::string, std::string> renames;
	const std::vector<std::string> words = EngineWords();
	for (size_t i = 0; i < words.size(); ++i)
		renames[words[i]] = words[i];

	const ConfigItems& items = tag->getItems();
	for (ConfigItems::const_iterator it = items.begin(); it != items.end(); ++it)
	{
		const std::string key = it->first;
		const std::string& value = it->second;
		if (key == "prefix")
		{
			if (value.size() != 1 || value[0] < '!' || value[0] > '~')
				throw ModuleException("<tally:prefix> must be one printable ASCII character, not '" + value + "'");
			s.prefix = value;
		}
		else if (key == "channel_answer_prefix")
			s.channel_answer_prefix = ParseYesNo(key, value);
		else if (key.compare(0, 4, "cmd_") == 0 && key.size() > 4)
		{
			if (value.find(' ') != std::string::npos)
				throw ModuleException("<tally:" + key + "> must be one word");
			renames[Upper(key.substr(4))] = Upper(value);
		}
		else if (std::find(known.begin(), known.end(), key) == known.end()
			&& key.size() > 4 && key.compare(key.size() - 4, 4, "file") == 0)
		{
			/* dsnfile="..." or dsn_file="...": the value of `dsn` lives in a file. */
			std::string base = key.substr(0, key.size() - 4);
			if (!base.empty() && base[base.size() - 1] == '_')
				base.erase(base.size() - 1);
			if (std::find(known.begin(), known.end(), base) == known.end())
				throw ModuleException("<tally:" + key + "> names no known key '" + base + "'");
			s.engine[base] = ReadSecretFile(value);
		}
		else
			s.engine[key] = value;
	}
	if (!s.engine.count("signing_key") || s.engine["signing_key"].empty())
	{
		s.engine["signing_key"] = ServerInstance->Config->Paths.PrependData(SIGNING_KEY_DEFAULT_NAME);
		s.key_defaulted = true;
	}
	for (std::map<std::string, std::string>::const_iterator r = renames.begin(); r != renames.end(); ++r)
	{
		if (r->second.empty())
			continue;
		if (s.words.count(r->second))
			throw ModuleException("<tally> two commands are both named " + r->second
				+ " (" + s.words[r->second] + " and " + r->first + ")");
		s.words[r->second] = r->first;
	}
	/* Remote mode (a tallyd serves the engine): this server is known to
	 * it by its server name, so a reconnect gets the answers it missed;
	 * IRC can intercept lines, set topics and notice @#channel. */
	if (s.engine.count("mode") && s.engine["mode"] == "remote")
	{
		if (!s.engine.count("instance"))
			s.engine["instance"] = ServerInstance->Config->ServerName;
		if (!s.engine.count("adapter"))
			s.engine["adapter"] = "m_tally";
		if (!s.engine.count("caps"))
			s.engine["caps"] = ConvToStr(TALLY_CAP_INTERCEPT_COMMANDS | TALLY_CAP_PIN_TOPIC
				| TALLY_CAP_HOLD_FOR_MODERATORS);
	}
	return s;
}

/* Fills cfg from engine; strings in cfg borrow from this object. */
void Settings::Apply(tally_config* cfg) const
{
	tally_config_init(cfg);
	char err[TALLY_ERRBUF_BYTES];
	for (std::map<std::string, std::string>::const_iterator e = engine.begin(); e != engine.end(); ++e)
	{
		err[0] = '\0';
		if (tally_config_set(cfg, e->first.c_str(), e->second.c_str(), err, sizeof err) != TALLY_OK)
			throw ModuleException(std::string("<tally:") + e->first + "> " + err);
	}
	err[0] = '\0';
	if (tally_config_check(cfg, err, sizeof err) != TALLY_OK)
		throw ModuleException(std::string("<tally> ") + err);
}

} // namespace tallyirc

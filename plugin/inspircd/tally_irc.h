/* tally_irc.h — the InspIRCd adapter's helpers shared by its files:
 * reading the <tally> tag (settings.cpp) and checking lines (text.cpp).
 * m_tally.cpp is the module itself (hooks, commands, effects). */
#ifndef TALLY_IRC_H
#define TALLY_IRC_H

#include "inspircd.h"

#include <map>
#include <string>
#include <vector>

#include "tally.h"

namespace tallyirc {

/* ---- text.cpp ---------------------------------------------------------------- */
/* The engine's command words (tally_commands_describe), in its order. */
std::vector<std::string> EngineWords();
std::string Upper(const std::string& s);
std::string Lower(const std::string& s);
/* Why a line cannot be forwarded, or NULL (the engine's text rule). */
const char* LineProblem(const std::string& text);
/* True when the server may have cut the line (its length reached MaxLine). */
bool CutByServer(size_t raw_len);
extern const char* const LINE_CUT_TEXT;

/* ---- settings.cpp -------------------------------------------------------------- */
/* Everything read from one <tally> tag. Engine values are kept as text so a
 * rehash can tell which ones changed. */
struct Settings
{
	std::map<std::string, std::string> engine;   /* engine key -> value */
	std::string prefix;                          /* channel command prefix */
	bool channel_answer_prefix;                  /* "[#chan] " on answers to channel lines */
	std::map<std::string, std::string> words;    /* typed word (upper) -> engine word */
	bool key_defaulted;                          /* signing_key was not given: the data dir's */

	Settings() : channel_answer_prefix(true), key_defaulted(false) { }

	/* The signing key's directory, created when it is the default one. */
	void PrepareKeyDir() const;
	/* Reads the tag; throws ModuleException naming the bad attribute. */
	static Settings Read(ConfigTag* tag);
	/* Fills cfg from engine; strings in cfg borrow from this object. */
	void Apply(tally_config* cfg) const;
};

} // namespace tallyirc

#endif

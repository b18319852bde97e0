/* text.cpp — the InspIRCd adapter's line checks and word lists (tally_irc.h). */
#include "tally_irc.h"

namespace tallyirc {

/* The command words come from the engine (tally_commands_describe), so a
 * word the engine gains is registered without a change here. cmd_<word> in
 * <tally> renames or disables one; an unknown cmd_<word> adds a word (for a
 * newer engine than this module was tested with). */
void CollectWord(void* ud, const tally_command_doc* doc)
{
	static_cast<std::vector<std::string>*>(ud)->push_back(doc->word);
}

std::vector<std::string> EngineWords()
{
	std::vector<std::string> words;
	tally_commands_describe(CollectWord, &words);
	return words;
}

std::string Upper(const std::string& s)
{
	std::string out(s);
	for (size_t i = 0; i < out.size(); ++i)
		if (out[i] >= 'a' && out[i] <= 'z')
			out[i] = char(out[i] - 'a' + 'A');
	return out;
}

std::string Lower(const std::string& s)
{
	std::string out(s);
	for (size_t i = 0; i < out.size(); ++i)
		if (out[i] >= 'A' && out[i] <= 'Z')
			out[i] = char(out[i] - 'A' + 'a');
	return out;
}

/* Why a line cannot be forwarded, or NULL. The text rule is the engine's
 * own (tally_text_check), so the two cannot disagree; checking here lets
 * the user hear about it without a round trip. NUL and CTCP keep their own
 * words: they are what IRC users most often send by accident. */
const char* LineProblem(const std::string& text)
{
	if (text.find('\0') != std::string::npos)
		return "NUL bytes are not allowed";
	if (text.find('\x01') != std::string::npos)
		return "CTCP is not allowed in commands";
	if (text.size() > TALLY_TEXT_BYTES_MAX)
		return tally_strerror(TALLY_ETOOBIG);
	int rc = tally_text_check(text.data(), text.size());
	if (rc == TALLY_EBAD_UTF8)
		return tally_strerror(TALLY_EBAD_UTF8);
	if (rc != TALLY_OK)
		return "control characters (colours, bold, tabs) are not allowed in commands";
	return NULL;
}

/* InspIRCd keeps at most MaxLine - 2 bytes of a client's line (CR LF not
 * counted) and drops the rest without telling anyone; it also turns NUL
 * bytes into spaces. A command whose line reached that length has lost its
 * end, so it is refused rather than acted on in part. raw_len is the length
 * of the line as the client sent it, rebuilt from its parts. */
bool CutByServer(size_t raw_len)
{
	/* Two bytes of slack: a client may put a ':' before any last parameter
	 * and the rebuilt length cannot see it. No tally command comes near. */
	return raw_len + 2 + 2 >= ServerInstance->Config->Limits.MaxLine;
}

const char* const LINE_CUT_TEXT =
	"line too long: the server keeps only the first 510 bytes of a line, so nothing was done";

} // namespace tallyirc
